-- refined.sessions for session_date in [day_before, date_to], from refined.events.
--
-- The day before the range is rewritten too: its last sessions may continue into the range. A
-- session is read from the events of [day_before, day_after], which holds every session shorter
-- than a day whole (longer ones: docs/segmentlets.md).
insert into refined.sessions (
    session_id, site_id, session_date, visitor_id, member_id, node, started_at, ended_at, duration_seconds, events,
    page_views, unique_pages, landing_page, exit_page, inflow_medium, inflow_source, inflow_campaign,
    inflow_keyword, device_type, region, is_bounce
)
with

session_events as (
    select
        *,
        case event_type when 'land' then 0 when 'page' then 1 else 2 end as type_rank,
        event_type in ('page', 'land') and page_path is not null as is_page
    from refined.events
    where
        event_date between @day_before and @day_after
        and session_date between @day_before and @date_to
),

firsts as (
    select session_id, node, device_type, region
    from session_events
    where event_id = session_id
),

arrivals as (
    select session_id, medium, source_name, campaign, search_keyword
    from session_events
    where event_type = 'land' and is_entry
    qualify row_number() over (partition by session_id order by event_ts, event_id) = 1
),

pages as (
    select
        session_id,
        first_value(page_path) over (
            partition by session_id order by event_ts, type_rank, event_id
            rows between unbounded preceding and unbounded following
        ) as landing_page,
        last_value(page_path) over (
            partition by session_id order by event_ts, type_rank, event_id
            rows between unbounded preceding and unbounded following
        ) as exit_page
    from session_events
    where is_page
    qualify row_number() over (partition by session_id order by event_ts, type_rank, event_id) = 1
),

members as (
    select session_id, member_id
    from session_events
    where member_id is not null
    qualify row_number() over (partition by session_id order by event_ts desc, type_rank desc, event_id desc) = 1
),

totals as (
    select
        session_id,
        any_value(site_id) as site_id,
        any_value(session_date) as session_date,
        any_value(visitor_id) as visitor_id,
        min(event_ts) as started_at,
        max(event_ts) as ended_at,
        count(*) as events,
        countif(event_type = 'page') as page_views,
        count(distinct if(is_page, page_path, null)) as unique_pages
    from session_events
    group by session_id
),

final as (
    select
        t.session_id,
        t.site_id,
        t.session_date,
        t.visitor_id,
        m.member_id,
        f.node,
        t.started_at,
        t.ended_at,
        timestamp_diff(t.ended_at, t.started_at, second) as duration_seconds,
        t.events,
        t.page_views,
        t.unique_pages,
        p.landing_page,
        p.exit_page,
        coalesce(a.medium, 'direct') as inflow_medium,
        a.source_name as inflow_source,
        a.campaign as inflow_campaign,
        a.search_keyword as inflow_keyword,
        f.device_type,
        f.region,
        t.page_views <= 1 as is_bounce
    from totals as t
    left join firsts as f on f.session_id = t.session_id
    left join arrivals as a on a.session_id = t.session_id
    left join pages as p on p.session_id = t.session_id
    left join members as m on m.session_id = t.session_id
)

-- date order keeps DuckDB's row groups whole and each day's rows together (docs/segmentlets.md)
select * from final
order by session_date
