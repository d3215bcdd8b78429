-- Step 1 of publishing a run: clear the current assignment (clusters.sql refills it from staging).
delete from refined.clusters where true
