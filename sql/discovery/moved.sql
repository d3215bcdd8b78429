-- How the staged assignment differs from the current one: customers in both runs whose cluster id
-- changed, customers new to clustering, and customers no longer in scope.
select
    countif(s.customer_id is not null and c.customer_id is not null and s.cluster_id != c.cluster_id) as moved,
    countif(s.customer_id is not null and c.customer_id is not null and s.cluster_id = c.cluster_id) as stayed,
    countif(c.customer_id is null) as entered,
    countif(s.customer_id is null) as left_scope
from refined.cluster_staging as s
full outer join refined.clusters as c on s.customer_id = c.customer_id
