-- Rejected rows of the window by stage (collect, import: at the door; load: refused by the warehouse
-- or the loader) and reason code; a bad row's id hashes what failed, so a retry counts once.
select
    stage,
    reason_code,
    count(distinct bad_row_id) as bad_rows
from raw.bad_rows
where event_date between @since and @until
group by stage, reason_code
order by stage, bad_rows desc, reason_code
