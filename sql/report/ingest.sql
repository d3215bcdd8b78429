-- Ingestion over the report's window (its event dates): per raw event table, the distinct
-- events loaded. Raw tables are append-only, so a message loaded twice counts once here.
select 'page' as source_table, count(distinct event_id) as events
from raw.page
where event_date between @since and @until
union all
select 'land' as source_table, count(distinct event_id) as events
from raw.land
where event_date between @since and @until
union all
select 'event' as source_table, count(distinct event_id) as events
from raw.event
where event_date between @since and @until
union all
select 'user' as source_table, count(distinct event_id) as events
from raw.user
where event_date between @since and @until
union all
select 'conv' as source_table, count(distinct event_id) as events
from raw.conv
where event_date between @since and @until
