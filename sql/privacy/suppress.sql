-- privacy.suppressions: add the hashed identifiers an erasure expanded to, one row per identifier
-- and site; the row id makes a retried erasure add nothing. Each entry is 'id_type|id_hash|request_id'
-- (shared/privacy/suppression.py; type and hash hold no '|', the request id is the rest): one
-- array, as parallel arrays would need WITH OFFSET, which bqemulator mistranslates.
merge privacy.suppressions as t
using (
    with

    entries as (
        select
            split(entry, '|')[offset(0)] as id_type,
            split(entry, '|')[offset(1)] as id_hash,
            regexp_extract(entry, r'^[^|]*\|[^|]*\|(.*)$') as request_id
        from unnest(@entries) as entry
    ),

    final as (
        select
            concat(@site_id, '|', id_hash) as suppression_id,
            @site_id as site_id,
            id_type,
            id_hash,
            @suppressed_at as suppressed_at,
            request_id,
            @reason as reason
        from entries
    )

    select * from final
) as s
on t.suppression_id = s.suppression_id
when not matched then insert (suppression_id, site_id, id_type, id_hash, suppressed_at, request_id, reason)
values (s.suppression_id, s.site_id, s.id_type, s.id_hash, s.suppressed_at, s.request_id, s.reason)
