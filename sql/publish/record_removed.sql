-- The ledger marks the rows of one accepted removal batch that share a reason; rows marked already
-- (a retried batch) keep their first removal.
update audiences.publication_ledger
set removed_at = @removed_at, removed_run = @run_id, removed_reason = @reason
where publication_id = @publication_id and removed_at is null and entry_id in (select e from unnest(@entry_ids) as e)
