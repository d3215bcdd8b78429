-- refined.journeys for session_date in [day_before, date_to]: the ordered page-to-page path of
-- each session, one row per land event (the same sessions sessions.sql rewrites).
insert into refined.journeys (
    step_id, session_id, site_id, session_date, visitor_id, step, event_ts, page_path, previous_page, next_page,
    seconds_to_next, medium
)
with

moves as (
    select session_id, site_id, session_date, visitor_id, event_id, event_ts, page_path, is_entry, medium
    from refined.events
    where
        event_date between @day_before and @day_after
        and session_date between @day_before and @date_to
        and event_type = 'land'
),

steps as (
    select
        *,
        row_number() over (partition by session_id order by event_ts, event_id) as step,
        lag(page_path) over (partition by session_id order by event_ts, event_id) as previous_page,
        lead(page_path) over (partition by session_id order by event_ts, event_id) as next_page,
        lead(event_ts) over (partition by session_id order by event_ts, event_id) as next_ts
    from moves
),

final as (
    select
        concat(session_id, ':', cast(step as string)) as step_id,
        session_id,
        site_id,
        session_date,
        visitor_id,
        step,
        event_ts,
        page_path,
        previous_page,
        next_page,
        timestamp_diff(next_ts, event_ts, second) as seconds_to_next,
        if(is_entry, medium, 'internal') as medium
    from steps
)

-- date order keeps DuckDB's row groups whole and each day's rows together (docs/segmentlets.md)
select * from final
order by session_date
