-- The days outside [date_from, date_to] that refine.py rewrites along with the range: those whose
-- refined events hold an order copy that a raw copy of the range now replaces (the same site and
-- order_id, at most order_copy_days apart, collected later; the rule of events.sql). A history
-- refined in one go never has such a day; a correction that arrives after its order's day was
-- refined does.
select distinct e.event_date
from refined.events as e
inner join raw.conv as c
    on
        c.site_id = e.site_id
        and c.order_id = e.order_id
        and abs(date_diff(c.event_date, e.event_date, day)) <= @order_copy_days
        and (
            c.collected_at > e.collected_at
            or (c.collected_at = e.collected_at and c.event_ts > e.event_ts)
            or (c.collected_at = e.collected_at and c.event_ts = e.event_ts and c.event_id > e.event_id)
        )
where
    e.event_date between @orders_from and @orders_to
    and e.event_date not between @date_from and @date_to
    and e.event_name = 'order'
    and e.order_id is not null
    and c.event_date between @date_from and @date_to
    and c.conv_type = 'order'
order by e.event_date
