-- One row to end a replace session with when nothing is left to send (a session ends only with a
-- batch, and a batch holds at least one row): a staged desired row, else one the session sent.
with

candidates as (
    select
        1 as priority,
        site_id,
        customer_id,
        row_hash,
        hashes
    from audiences.publication_staging
    where publication_id = @publication_id and row_hash is not null
    union all
    select
        2 as priority,
        site_id,
        customer_id,
        row_hash,
        hashes
    from audiences.publication_ledger
    where publication_id = @publication_id and removed_at is null and session_id = @session_id
)

select
    site_id,
    customer_id,
    row_hash,
    hashes
from candidates
order by priority, customer_id, row_hash
limit 1
