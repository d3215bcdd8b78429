-- BigQuery ML path, step 5: BigQuery ML's centroid ids (1..k) become the stable cluster ids; the
-- id of centroid c is element c (1-based) of the stable_ids parameter.
update {staging}
set cluster_id = @stable_ids[ordinal(cluster_id)]
where true
