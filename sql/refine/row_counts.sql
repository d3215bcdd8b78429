-- Rows per refined table after a run, recorded in the run's Firestore document.
select 'events' as table_name, count(*) as row_count from refined.events
union all
select 'sessions', count(*) from refined.sessions
union all
select 'journeys', count(*) from refined.journeys
union all
select 'node_days', count(*) from refined.node_days
union all
select 'node_traits', count(*) from refined.node_traits
union all
select 'identity_edges', count(*) from refined.identity_edges
union all
select 'identities', count(*) from refined.identities
union all
select 'rfm', count(*) from refined.rfm
union all
select 'profiles', count(*) from refined.profiles
