-- Events refinement kept for the window's event dates (deduplicated on event_id by refine itself).
select count(distinct event_id) as events
from refined.events
where event_date between @since and @until
