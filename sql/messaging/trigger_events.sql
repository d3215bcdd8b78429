-- Collected events of one name now due for a campaign triggered on them: raw.event rows of that
-- event_name (event type 'event') or raw.conv rows of that conv_type ('conv'), bots left out, that happened
-- after the oldest time (not expired) and by the due time (the delay has passed). Each is resolved
-- to a customer through refined.identities, by its member id first, then its visitor id; an event
-- refinement has not resolved yet has a null customer_id (it waits, until it expires). A click on a
-- message's link (source 'click', written only by collect from a signed link) names no visitor or
-- member: its customer is the one the message went to, properties.customer_id. The same property on
-- an event of any other source is the website's word and is not read.
-- An event is answered, and left out, when a row of the campaign names its run (run_id
-- 'event-' || event_id, whichever customer it was planned for: refinement may merge customers
-- since) or when its customer has a row of the campaign planned at or after it: one message answers
-- every event before it. Of a customer's open events the first is the entry; with a segment, only
-- its current members'. Raw tables may hold copies of an event: they are one.
with

happened as (
    select distinct
        event_id,
        site_id,
        event_ts,
        member_id,
        visitor_id,
        if(source = 'click', json_value(properties, '$.customer_id'), cast(null as string)) as clicked_customer
    from raw.event
    where
        @event_type = 'event'
        and event_date >= @first_day
        and event_name = @event_name
        and event_ts > @oldest
        and event_ts <= @due_until
        and not coalesce(is_bot, false)
    union distinct
    select distinct
        event_id,
        site_id,
        event_ts,
        member_id,
        visitor_id,
        cast(null as string) as clicked_customer
    from raw.conv
    where
        @event_type = 'conv'
        and event_date >= @first_day
        and conv_type = @event_name
        and event_ts > @oldest
        and event_ts <= @due_until
        and not coalesce(is_bot, false)
),

resolved as (
    select
        h.event_id,
        h.site_id,
        h.event_ts,
        coalesce(m.customer_id, v.customer_id, nullif(h.clicked_customer, '')) as customer_id
    from happened as h
    left join refined.identities as m
        on m.site_id = h.site_id and m.id_type = 'member' and m.id_value = h.member_id and m.customer_id != ''
    left join refined.identities as v
        on v.site_id = h.site_id and v.id_type = 'visitor' and v.id_value = h.visitor_id and v.customer_id != ''
),

planned as (
    select
        run_id,
        customer_id,
        planned_at
    from audiences.deliveries
    where campaign_id = @campaign_id and planned_at >= @oldest
),

last_planned as (
    select
        customer_id,
        max(planned_at) as last_planned
    from planned
    group by customer_id
)

select
    r.site_id,
    r.customer_id,
    r.event_id,
    r.event_ts
from resolved as r
left join last_planned as l on l.customer_id = r.customer_id
where
    concat(@run_prefix, r.event_id) not in (select p.run_id from planned as p)
    and (l.last_planned is null or l.last_planned < r.event_ts)
    and (
        cast(@segment_id as string) is null
        or r.customer_id is null
        or r.customer_id in (
            select s.customer_id from audiences.segment_members as s where s.segment_id = @segment_id
        )
    )
qualify row_number() over (
    partition by r.site_id, coalesce(r.customer_id, r.event_id)
    order by r.event_ts, r.event_id
) = 1
order by r.site_id, r.event_ts, r.event_id
