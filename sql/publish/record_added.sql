-- The ledger takes the rows of one accepted batch (entries 'customer_id|row_hash') from the staged
-- desired set. A row held already keeps its entry and records the replace session that sent it
-- again; a retried batch of the same run matches the entries it made and changes nothing.
merge audiences.publication_ledger as t
using (
    select
        concat(@publication_id, '|', customer_id, '|', row_hash, '|', @run_id) as entry_id,
        site_id,
        customer_id,
        row_hash,
        hashes,
        consent_event_id
    from audiences.publication_staging
    where
        publication_id = @publication_id
        and customer_id between @first_customer and @last_customer  -- a batch is one keyset range: pruned
        and concat(customer_id, '|', row_hash) in (select entry from unnest(@entries) as entry)
) as s
on
    t.publication_id = @publication_id
    and t.customer_id = s.customer_id
    and t.row_hash = s.row_hash
    and t.removed_at is null
when matched then update set session_id = cast(@session_id as int64)
when not matched then insert (
    entry_id, publication_id, site_id, destination_id, audience_id, customer_id, row_hash, keys, hashes,
    consent_event_id, session_id, added_at, added_run
) values (
    s.entry_id, @publication_id, s.site_id, @destination_id, @audience_id, s.customer_id, s.row_hash, @keys,
    s.hashes, s.consent_event_id, cast(@session_id as int64), @added_at, @run_id
)
