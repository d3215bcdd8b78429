-- The ledger takes the rows of one accepted batch from the staged desired set. A batch is a run of
-- consecutive pending rows in (customer_id, row_hash) order, so it is named by its first and last
-- row rather than by a list. A staged row in that range that the ledger holds already is either not
-- pending (mirror, add_only: it stays as it is) or one this replace session sent before (it records
-- the session again); a retried batch of the same run matches the entries it made.
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
        and row_hash is not null
        and customer_id between @first_customer and @last_customer
        and (customer_id > @first_customer or row_hash >= @first_hash)
        and (customer_id < @last_customer or row_hash <= @last_hash)
) as s
on
    t.publication_id = @publication_id
    and t.customer_id = s.customer_id
    and t.row_hash = s.row_hash
    and t.removed_at is null
when matched and cast(@session_id as int64) is not null then update set session_id = cast(@session_id as int64)
when not matched then insert (
    entry_id, publication_id, site_id, destination_id, audience_id, customer_id, row_hash, keys, hashes,
    consent_event_id, session_id, added_at, added_run
) values (
    s.entry_id, @publication_id, s.site_id, @destination_id, @audience_id, s.customer_id, s.row_hash, @keys,
    s.hashes, s.consent_event_id, cast(@session_id as int64), @added_at, @run_id
)
