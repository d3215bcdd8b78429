-- A replace session ended: the audience holds exactly what the session sent, so every held row the
-- session did not send is out.
update audiences.publication_ledger
set removed_at = @removed_at, removed_run = @run_id, removed_reason = 'replaced'
where publication_id = @publication_id and removed_at is null and (session_id is null or session_id != @session_id)
