-- A run stages its publication's desired rows afresh: the previous run's go first.
delete from audiences.publication_staging
where publication_id = @publication_id
