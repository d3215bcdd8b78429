-- Members per cluster of the staged assignment (the BigQuery ML path has no sizes of its own).
select cluster_id, count(*) as size
from refined.cluster_staging
group by cluster_id
order by cluster_id
