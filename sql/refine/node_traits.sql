-- refined.node_traits for event_date in [date_from, date_to]: each attribute value an identity node
-- showed on a day, how often and when; profiles pick the most frequent, the latest or the list.
insert into refined.node_traits (
    trait_id, site_id, node, event_date, trait, value, events, first_ts, last_ts
)
with

counted as (
    select *
    from refined.events
    where event_date between @date_from and @date_to and node is not null
),

page_views as (
    select * from counted where event_type = 'page'
),

arrivals as (
    select * from counted where event_type = 'land' and is_entry
),

observations as (
    select site_id, node, event_date, event_ts, 'device' as trait, device_type as value from page_views
    union all
    select site_id, node, event_date, event_ts, 'os', os from page_views
    union all
    select site_id, node, event_date, event_ts, 'br', browser from page_views
    union all
    select site_id, node, event_date, event_ts, 'region', region from page_views
    union all
    select site_id, node, event_date, event_ts, 'arrival', medium from arrivals
    union all
    select site_id, node, event_date, event_ts, 'ad', coalesce(source_name, click_id_type)
    from arrivals
    where medium = 'paid'
    union all
    select site_id, node, event_date, event_ts, 'cc', campaign from arrivals
    union all
    select site_id, node, event_date, event_ts, 'kw_outer', lower(trim(search_keyword)) from arrivals
    union all
    select site_id, node, event_date, event_ts, 'kw_inner', lower(trim(search_keyword))
    from counted
    where event_type = 'event' and event_name = 'search'
    union all
    select site_id, node, event_date, event_ts, 'pn', trim(product_name)
    from counted
    where event_type = 'event' and event_name = 'product_view'
    union all
    select c.site_id, c.node, c.event_date, c.event_ts, 'pn_odr', trim(item_name)
    from counted as c, unnest(c.item_names) as item_name
    where c.event_type = 'conv' and c.event_name = 'order'
    union all
    select site_id, node, event_date, event_ts, 'sex', sex from counted
    union all
    select site_id, node, event_date, event_ts, 'birth_year', cast(birth_year as string) from counted
    union all
    select site_id, node, event_date, event_ts, 'email', email from counted
    union all
    select site_id, node, event_date, event_ts, 'phone', phone from counted
),

final as (
    select
        concat(site_id, '|', node, '|', cast(event_date as string), '|', trait, '|', value) as trait_id,
        site_id,
        node,
        event_date,
        trait,
        value,
        count(*) as events,
        min(event_ts) as first_ts,
        max(event_ts) as last_ts
    from observations
    where value is not null and value != ''
    group by site_id, node, event_date, trait, value
)

-- date order keeps DuckDB's row groups whole and each day's rows together (docs/segmentlets.md)
select * from final
order by event_date
