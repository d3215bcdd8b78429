-- The ledger marks the rows of one accepted removal batch, each with its planned reason. A batch is
-- a run of consecutive planned rows in (schema_key, entry_id) order, all shared or all not, so it is
-- named by its first and last row rather than by a list (DuckDB binds a list at ~0.2 ms an element);
-- the customers' range lets the scan skip the ledger's other blocks. Rows marked already (a retried
-- batch) keep their first removal.
update audiences.publication_ledger as t
set removed_at = @removed_at, removed_run = @run_id, removed_reason = p.reason
from audiences.publication_leaving as p
where
    p.publication_id = @publication_id
    and p.shared = @shared
    and (p.schema_key > @first_schema or (p.schema_key = @first_schema and p.entry_id >= @first_entry))
    and (p.schema_key < @last_schema or (p.schema_key = @last_schema and p.entry_id <= @last_entry))
    and t.entry_id = p.entry_id
    and t.publication_id = @publication_id
    and t.removed_at is null
    and t.customer_id between @low_customer and @high_customer
