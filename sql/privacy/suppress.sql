-- privacy.suppressions: add the hashed identifiers an erasure expanded to, one row per identifier
-- and site; the row id makes a retried erasure add nothing. Parallel arrays: the i-th hash has the
-- i-th type and request (shared/privacy/suppression.py deduplicates them).
merge privacy.suppressions as t
using (
    select
        concat(@site_id, '|', id_hash) as suppression_id,
        @site_id as site_id,
        @id_types[offset(position)] as id_type,
        id_hash,
        @suppressed_at as suppressed_at,
        @request_ids[offset(position)] as request_id,
        @reason as reason
    from unnest(@id_hashes) as id_hash with offset as position
) as s
on t.suppression_id = s.suppression_id
when not matched then insert (suppression_id, site_id, id_type, id_hash, suppressed_at, request_id, reason)
values (s.suppression_id, s.site_id, s.id_type, s.id_hash, s.suppressed_at, s.request_id, s.reason)
