-- The requests (and import files) that brought the window's rows, accepted or rejected: the funnel's
-- first stage as far as the warehouse can see it (a request with no row left no trace).
select count(distinct request_id) as requests
from (
    select request_id from raw.page where event_date between @since and @until
    union all
    select request_id from raw.land where event_date between @since and @until
    union all
    select request_id from raw.event where event_date between @since and @until
    union all
    select request_id from raw.user where event_date between @since and @until
    union all
    select request_id from raw.conv where event_date between @since and @until
    union all
    select request_id from raw.bad_rows where event_date between @since and @until
) as requests
where request_id is not null
