-- The members to rehash, with their key values, are a run's scratch: emptied before a run looks for
-- them and once they are staged, so no copy of the values outlives staging.
delete from audiences.publication_changes
where publication_id = @publication_id
