"""Local fakes of the providers activation talks to: real servers on free ports that record each
request and answer as the provider does, including its errors (not deployed)."""
