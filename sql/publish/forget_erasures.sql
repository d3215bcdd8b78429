-- Copied rows of erased customers that the platform accepted a removal of: nothing of them is kept.
delete from audiences.publication_erasures
where publication_id = @publication_id and entry_id in (select e from unnest(@entry_ids) as e)
