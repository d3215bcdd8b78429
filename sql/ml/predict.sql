-- BigQuery ML path, step 4: assign everyone in scope to the nearest centroid, into the staging
-- table (refined.cluster_staging) with BigQuery ML's centroid id; remap.sql turns it into the
-- stable id once the centroids are matched to the previous run's.
insert into {staging} (customer_id, site_id, cluster_id, distance, run_id, computed_at)
select
    customer_id,
    site_id,
    centroid_id as cluster_id,
    (select min(d.distance) from unnest(nearest_centroids_distance) as d) as distance,
    @run_id as run_id,
    @computed_at as computed_at
from ml.predict(model {model}, table {features})
