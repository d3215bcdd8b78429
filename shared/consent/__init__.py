"""Consent and channel subscriptions: the ledgers' vocabulary and rows, their current state, the one gate.

`vocabulary` names what may be recorded, `ledger` turns one decision into validated ledger rows,
`policy` is the final check before a send or upload. The current state and the audience gate are
SQL (sql/consent); shared/services/consent.py runs them. docs/consent.md describes the model.
"""
