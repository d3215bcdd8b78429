-- The suppression hash of one identifier, as every statement that checks rows against
-- privacy.suppressions computes it (shared/privacy/suppression.py ID_HASH_SQL); the tests compare it
-- with the Python id_hash on both engines.
select to_hex(sha256(concat(@privacy_salt, @site_id, '|', @id_type, '|', @id_value))) as id_hash
