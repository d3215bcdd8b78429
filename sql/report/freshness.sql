-- The newest row each stage wrote (raw tables: within the window's event dates, their partitions):
-- when a run record is missing, this still says how old each stage's output is.
select 'collect' as stage, max(collected_at) as last_at from raw.page where event_date between @since and @until
union all
select 'collect' as stage, max(collected_at) as last_at from raw.event where event_date between @since and @until
union all
select 'refine' as stage, max(computed_at) as last_at from refined.profiles
union all
select 'discover' as stage, max(computed_at) as last_at from refined.clusters
union all
select 'build_segments' as stage, max(computed_at) as last_at from audiences.segment_members
union all
select 'publish_audiences' as stage, max(sent_at) as last_at from audiences.publish_log
union all
select 'send_messages' as stage, max(planned_at) as last_at from audiences.deliveries
union all
select 'deliver' as stage, max(at) as last_at from audiences.delivery_events
