-- How many staged rows a replace session still has to send (pending.sql without the paging): the
-- batch that sends the last of them carries last_batch_flag.
select count(*) as pending
from audiences.publication_staging as s
where
    s.publication_id = @publication_id
    and s.row_hash is not null
    and not exists (
        select 1
        from audiences.publication_ledger as l
        where
            l.publication_id = @publication_id
            and l.removed_at is null
            and l.session_id = @session_id
            and l.customer_id = s.customer_id
            and l.row_hash = s.row_hash
    )
