-- The e-mail delivery a complaint report names (one copy; dry-run rows reached nobody), whether a
-- complaint about it is recorded already (its `complained` event in the window), and when its
-- complaint opt-out took effect if one was written in the window: a report retried after the
-- opt-out was stored but not its events is recorded with that time again, so the opt-out keeps
-- its row id. The window (from the since parameter) bounds the partitions read.
with

delivery as (
    select
        delivery_id,
        campaign_id,
        run_id,
        site_id,
        customer_id,
        channel,
        address
    from audiences.deliveries
    where delivery_id = @delivery_id and channel = 'email' and not dry_run
    qualify row_number() over (partition by delivery_id order by planned_at) = 1
),

complained as (
    select count(*) > 0 as complained
    from audiences.delivery_events
    where delivery_id = @delivery_id and event = 'complained' and at >= @since
),

opted_out as (
    select min(s.effective_at) as opted_out_at
    from raw.subscription as s
    inner join delivery as d on d.site_id = s.site_id and d.address = s.address
    where
        s.event_date >= cast(@since as date)
        and s.channel = 'email'
        and s.source = 'complaint'
        and s.request_id = @delivery_id
)

select
    d.*,
    c.complained,
    o.opted_out_at
from delivery as d
cross join complained as c
cross join opted_out as o
