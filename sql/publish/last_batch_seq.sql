-- The last add or remove batch a run logged for a publication: a retried run numbers on from it.
select coalesce(max(batch_seq), 0) as last_seq
from audiences.publish_log
where run_id = @run_id and publication_id = @publication_id and op != 'replace'
