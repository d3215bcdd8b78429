"""Privacy requests: subject keys, expansion, erase, export, suppression (docs/privacy.md).

Every table that holds personal data declares the columns that identify the person a row is about
(`subject_keys` in sql/schema/*/tables.json, read by shared/schema.py); erasure and export are
generated from those declarations, so a new table is covered by declaring its keys.
"""
