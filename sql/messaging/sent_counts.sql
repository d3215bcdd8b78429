-- Advertising messages each member of a segment (or each customer of a list: a triggered campaign's
-- entries) on a site was sent since @since, the start of the frequency cap's window: deliveries of
-- kind advertising, on any channel and campaign, with a sent or unknown event (a send whose outcome
-- is unknown may have arrived: it counts). Copies of an event or a row count once. Members with none
-- are absent. (Deliver counts its batch's customers the same way in recipients.sql.)
with

audience as (
    select customer_id
    from audiences.segment_members
    where site_id = @site_id and segment_id = cast(@segment_id as string)
    union distinct
    select customer_id
    from unnest(cast(@customer_ids as array<string>)) as customer_id
),

results as (
    select distinct
        e.delivery_id,
        e.customer_id
    from audiences.delivery_events as e
    inner join audience as a on a.customer_id = e.customer_id
    where e.site_id = @site_id and e.at >= @since and e.event in ('sent', 'unknown')
),

advertising as (
    select distinct delivery_id
    from audiences.deliveries
    where
        site_id = @site_id
        and kind = 'advertising'
        and planned_at >= timestamp_sub(@since, interval 30 day)
        and delivery_id in (select r.delivery_id from results as r)
)

select
    r.customer_id,
    count(*) as sent
from results as r
inner join advertising as d on d.delivery_id = r.delivery_id
group by r.customer_id
