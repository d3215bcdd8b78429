-- refined.profile_queue: emptied once profiles are built from it. A run that fails before this
-- leaves the queue for the next run, which rebuilds those customers too.
delete from refined.profile_queue
where true
