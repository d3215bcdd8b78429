-- The planned removals are a run's scratch: emptied before a run plans them and once they are done.
delete from audiences.publication_leaving
where publication_id = @publication_id
