-- Empty the staging table before a run stages its assignment (sklearn load or BigQuery ML predict).
delete from refined.cluster_staging where true
