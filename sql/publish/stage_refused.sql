-- Members the gate refuses are staged with its answer and no row (nothing of theirs is hashed):
-- removes.sql takes a row they held out with reason no_consent or erased.
insert into audiences.publication_staging (
    staging_id, publication_id, run_id, site_id, customer_id, reason, consent_event_id, fingerprint, row_hash,
    hashes, staged_at
)
select
    concat(@publication_id, '|', g.customer_id) as staging_id,
    @publication_id as publication_id,
    @run_id as run_id,
    g.site_id,
    g.customer_id,
    g.reason,
    g.consent_event_id,
    cast(null as string) as fingerprint,
    cast(null as string) as row_hash,
    cast([] as array<string>) as hashes,
    @staged_at as staged_at
from audiences.publication_gate as g
where
    g.publication_id = @publication_id
    and g.reason != 'eligible'
    and not exists (
        select 1
        from audiences.publication_staging as s
        where s.publication_id = @publication_id and s.customer_id = g.customer_id
    )
