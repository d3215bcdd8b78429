-- An erasure is about to delete the customers' ledger rows: their held rows are copied first, so
-- the next publish run can send the platform the exact hashes to forget. A retried erasure copies
-- nothing twice.
insert into audiences.publication_erasures (
    entry_id, publication_id, site_id, audience_id, customer_id, row_hash, keys, hashes, requested_at
)
select
    l.entry_id,
    l.publication_id,
    l.site_id,
    l.audience_id,
    l.customer_id,
    l.row_hash,
    l.keys,
    l.hashes,
    @requested_at as requested_at
from audiences.publication_ledger as l
where
    l.site_id = @site_id
    and l.customer_id in (select c from unnest(@customer_ids) as c)
    and l.removed_at is null
    and not exists (select 1 from audiences.publication_erasures as e where e.entry_id = l.entry_id)
