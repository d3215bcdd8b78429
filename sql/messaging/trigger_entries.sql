-- Entries into a segment now due for a campaign triggered on entry: current members (so still members at
-- the last build) who entered after the oldest time (not expired) and by the due time (the delay has
-- passed), and who have no row of the campaign planned since they entered. That last test makes a
-- redelivered or later tick plan nobody twice; a member who left and came back has a later
-- entered_at than the row, so the return is a new entry. Members without entered_at (added before
-- the column existed) never trigger. Deliveries are read from the oldest time on: a row that answers an
-- entry is planned after it.
with

planned as (
    select
        customer_id,
        max(planned_at) as last_planned
    from audiences.deliveries
    where campaign_id = @campaign_id and planned_at >= @oldest
    group by customer_id
)

select
    m.site_id,
    m.customer_id,
    m.entered_at
from audiences.segment_members as m
left join planned as p on p.customer_id = m.customer_id
where
    m.segment_id = @segment_id
    and m.entered_at > @oldest
    and m.entered_at <= @due_until
    and (p.last_planned is null or p.last_planned < m.entered_at)
order by m.site_id, m.customer_id
