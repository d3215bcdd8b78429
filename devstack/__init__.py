"""Local stand-ins for the cloud: emulators and function servers for tests and the demo.

Not deployed (infra excludes this package from the function source zip).
"""
