-- Customers per discovery cluster as assigned now, and how far from its centre they sit on average.
select
    cluster_id,
    count(*) as customers,
    avg(distance) as mean_distance,
    max(run_id) as run_id
from refined.clusters
group by cluster_id
order by cluster_id
