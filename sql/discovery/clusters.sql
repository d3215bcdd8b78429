-- Step 2 of publishing a run: the staged assignment becomes the current one.
insert into refined.clusters (customer_id, site_id, cluster_id, distance, run_id, computed_at)
select customer_id, site_id, cluster_id, distance, run_id, computed_at
from refined.cluster_staging
