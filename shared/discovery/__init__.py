"""Discovery: K-Means segments that explain themselves."""
