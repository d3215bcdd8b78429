-- The rows to take out of a publication's audience, with the reason, planned once a run into
-- publication_leaving (removes.sql reads it in pages, record_removed.sql marks the ledger by range).
-- Held rows the staged desired set lacks: the customer was erased (privacy.audience_removals, or the
-- gate found a suppressed identifier), has another row now (key_changed; also when no key is left),
-- is a member the gate refuses (no_consent), or left the segment. Then rows of erased customers that
-- the erasure copied out of the ledger (publication_erasures) before deleting it.
-- `shared`: another customer is to hold the very same row (a family's shared e-mail and phone);
-- sending its removal would take them out too, so the row only leaves the ledger.
insert into audiences.publication_leaving (
    entry_id, publication_id, schema_key, site_id, customer_id, row_hash, keys, hashes, reason, shared
)
with

staged as (
    select
        customer_id,
        row_hash,
        reason
    from audiences.publication_staging
    where publication_id = @publication_id
),

erased as (
    select distinct
        site_id,
        customer_id
    from privacy.audience_removals
),

copied as (
    select
        entry_id,
        site_id,
        customer_id,
        row_hash,
        keys,
        hashes,
        'erased' as reason
    from audiences.publication_erasures
    where publication_id = @publication_id
),

held as (
    select
        l.entry_id,
        l.site_id,
        l.customer_id,
        l.row_hash,
        l.keys,
        l.hashes,
        case
            when e.customer_id is not null or s.reason = 'suppressed' then 'erased'
            when s.customer_id is null then 'left_segment'
            when s.reason != 'eligible' then 'no_consent'
            else 'key_changed'
        end as reason
    from audiences.publication_ledger as l
    left join staged as s on s.customer_id = l.customer_id
    left join erased as e on e.site_id = l.site_id and e.customer_id = l.customer_id
    where
        l.publication_id = @publication_id
        and l.removed_at is null
        and (s.row_hash is null or s.row_hash != l.row_hash)
        and l.entry_id not in (select entry_id from copied)
),

leaving as (
    select * from held
    union all
    select * from copied
),

-- the few leaving rows that another customer is staged to hold (joined from the leaving side)
sharing as (
    select distinct r.entry_id
    from leaving as r
    inner join staged as o on o.row_hash = r.row_hash and o.customer_id != r.customer_id
),

final as (
    select
        r.entry_id,
        @publication_id as publication_id,
        array_to_string(r.keys, ',') as schema_key,
        r.site_id,
        r.customer_id,
        r.row_hash,
        r.keys,
        r.hashes,
        r.reason,
        x.entry_id is not null as shared
    from leaving as r
    left join sharing as x on x.entry_id = r.entry_id
)

select * from final
