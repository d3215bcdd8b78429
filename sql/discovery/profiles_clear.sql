-- Step 3: the cluster_id segmentlet of customers the run did not cluster (out of scope) is cleared.
update refined.profiles
set cluster_id = null
where
    cluster_id is not null
    and customer_id not in (select customer_id from refined.clusters)
