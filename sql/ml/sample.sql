-- BigQuery ML path, step 0: a deterministic random sample of the customers in scope, with the
-- columns of sql/discovery/features.sql (the scope_features slot holds that statement). The job learns
-- the scaling and chooses k by silhouette on it in process; the same seed gives the same sample.
select *
from ({scope_features}) as f
order by farm_fingerprint(concat(f.customer_id, cast(@seed as string)))
limit @sample_rows
