-- One page of the run's planned removals (plan_removals.sql), in (schema_key, entry_id) order after
-- the keyset: a batch has one schema, and a removal resends a row exactly.
select
    entry_id,
    site_id,
    customer_id,
    schema_key,
    keys,
    hashes,
    reason,
    shared
from audiences.publication_leaving
where
    publication_id = @publication_id
    and (schema_key > @after_schema or (schema_key = @after_schema and entry_id > @after_entry))
order by schema_key, entry_id
limit @page_rows
