-- Step 4: the cluster_id segmentlet of every clustered customer, written only where it changed.
update refined.profiles as p
set cluster_id = c.cluster_id
from refined.clusters as c
where
    p.customer_id = c.customer_id
    and (p.cluster_id is null or p.cluster_id != c.cluster_id)
