-- refined.profiles: delete the profile of every queued customer (profile_scope.sql), and so of the
-- customers left without activity (merged into another, split up, or their events deleted);
-- profile_swap_in.sql inserts the staged rows of the others. On DuckDB, a deleted and appended row
-- costs less than an update of every column, and the checkpoint writes only the new rows. A
-- failure in between is healed by the next run, which finds the same customers queued.
delete from refined.profiles
where customer_id in (select q.customer_id from refined.profile_queue as q)
