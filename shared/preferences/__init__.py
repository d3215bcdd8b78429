"""The preference centre: sealed links to it, and its page (shared/services/preferences.py runs it)."""
