-- refined.node_days for event_date in [date_from, date_to]: activity and revenue per identity node
-- and day. Kept per node, not per customer, so that a change in identity resolution needs no
-- rewrite of history: profiles and RFM add these rows up by customer at the time they run.
insert into refined.node_days (
    node_day_id, site_id, node, event_date, events, page_views, sessions, orders, refunds, revenue, first_ts,
    last_ts, last_order_ts
)
with

counted as (
    select *
    from refined.events
    where event_date between @date_from and @date_to and node is not null
),

final as (
    select
        concat(site_id, '|', node, '|', cast(event_date as string)) as node_day_id,
        site_id,
        node,
        event_date,
        count(*) as events,
        countif(event_type = 'page') as page_views,
        -- `is true`: DuckDB's count_if is NULL, not 0, when every condition is NULL
        countif((event_id = session_id) is true) as sessions,
        countif((event_type = 'conv' and event_name = 'order') is true) as orders,
        countif((event_type = 'conv' and event_name = 'refund') is true) as refunds,
        coalesce(sum(if(event_type = 'conv' and event_name in ('order', 'refund'), revenue, null)), 0) as revenue,
        min(event_ts) as first_ts,
        max(event_ts) as last_ts,
        max(if(event_type = 'conv' and event_name = 'order', event_ts, null)) as last_order_ts
    from counted
    group by site_id, node, event_date
)

-- date order keeps DuckDB's row groups whole and each day's rows together (docs/segmentlets.md)
select * from final
order by event_date
