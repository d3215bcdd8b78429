"""Activation rules shared by every destination: customer-file keys and hashing, deltas, campaigns."""
