-- refined.events for event_date in [date_from, date_to]: one row per event across the five raw
-- tables, ids cleaned of blocked values, the identity node, and the visitor's session.
--
-- Dedupe, in two steps, each decided only by raw rows any run covering the day reads, so that any
-- chunking of a history builds the same rows (docs/segmentlets.md):
-- 1. Copies of one event share its event_id: the first collected is kept. Raw is read one day
--    beyond each end, so a copy on a neighbouring day picks the same winner whichever range runs.
-- 2. Copies of one order (conv_type order, same site and order_id, distinct event ids) are one
--    order when their event dates are at most order_copy_days apart: a copy is dropped when a
--    copy collected later (then the later event_ts, then the larger event id) lies within that
--    many days of it; the survivor stays on its own event_date. raw.conv is read that many days
--    beyond each end; refine.py also rewrites the days outside the range whose refined orders a
--    copy in the range now replaces (order_days.sql).
-- Sessions: a new session after session_gap_seconds of inactivity, or at a non-direct arrival
-- whose inflow differs from the session's. The visitor's last event within the gap before
-- date_from (already refined) continues into this range, so day-by-day runs and one run over
-- the whole range assign the same sessions.
insert into refined.events (
    event_id, site_id, event_date, event_ts, collected_at, event_type, event_name, source, visitor_id, member_id,
    node, is_bot, session_id, session_date, page_path, page_title, device_type, os, browser, region, is_entry,
    medium, source_name, campaign, click_id_type, search_keyword, product_id, product_name, order_id, revenue,
    item_names, sex, birth_year, email, phone
)
with

raw_rows as (
    select
        event_id, site_id, event_date, event_ts, collected_at, 'page' as event_type, 'page_view' as event_name,
        source, visitor_id, member_id, is_bot, page_path, page_title, device_type, os, browser, region,
        cast(null as bool) as is_entry, cast(null as string) as medium, cast(null as string) as source_name,
        cast(null as string) as campaign, cast(null as string) as click_id_type,
        cast(null as string) as search_keyword, cast(null as string) as product_id,
        cast(null as string) as product_name, cast(null as string) as order_id,
        cast(null as numeric) as revenue, cast([] as array<string>) as item_names,
        cast(null as string) as sex, cast(null as int64) as birth_year,
        cast(null as string) as email, cast(null as string) as phone
    from raw.page
    where event_date between @day_before and @day_after

    union all

    select
        event_id, site_id, event_date, event_ts, collected_at, 'land', if(is_entry, 'entry', 'move'),
        source, visitor_id, member_id, is_bot, page_path, page_title, device_type, os, browser, region,
        is_entry, medium, source_name, utm_campaign, click_id_type,
        search_keyword, null, null, null, null, cast([] as array<string>), null, null, null, null
    from raw.land
    where event_date between @day_before and @day_after

    union all

    select
        event_id, site_id, event_date, event_ts, collected_at, 'identify', 'identify',
        source, visitor_id, member_id, is_bot, page_path, page_title, device_type, os, browser, region,
        null, null, null, null, null, null, null, null, null, null, cast([] as array<string>),
        sex, birth_year, email, phone
    from raw.user
    where event_date between @day_before and @day_after

    union all

    select
        event_id, site_id, event_date, event_ts, collected_at, 'conv', conv_type,
        source, visitor_id, member_id, is_bot, page_path, page_title, device_type, os, browser, region,
        null, null, null, null, null, null, null, null, order_id, revenue,
        array(select item.product_name from unnest(items) as item where item.product_name is not null),
        null, null,
        -- imported orders carry their contact keys in properties (shared/offline_import.py)
        json_value(properties, '$.email'), json_value(properties, '$.phone')
    from raw.conv
    where event_date between @orders_from and @orders_to

    union all

    select
        event_id, site_id, event_date, event_ts, collected_at, 'event', event_name,
        source, visitor_id, member_id, is_bot, page_path, page_title, device_type, os, browser, region,
        null, null, null, null, null, search_keyword, product_id, product_name, null, null,
        cast([] as array<string>), null, null, null, null
    from raw.event
    where event_date between @day_before and @day_after
),

-- one row per event: the first collected copy of an event_id
distinct_events as (
    select *
    from raw_rows
    where true
    qualify row_number() over (partition by site_id, event_id order by collected_at, event_ts, event_id) = 1
),

order_copies as (
    select site_id, order_id, event_id, event_date, event_ts, collected_at
    from distinct_events
    where event_name = 'order' and order_id is not null
),

-- order copies replaced by a copy of the same order collected later, at most order_copy_days apart
superseded as (
    select distinct
        c.site_id,
        c.event_id
    from order_copies as c
    inner join order_copies as later
        on
            later.site_id = c.site_id
            and later.order_id = c.order_id
            and abs(date_diff(later.event_date, c.event_date, day)) <= @order_copy_days
            and (
                later.collected_at > c.collected_at
                or (later.collected_at = c.collected_at and later.event_ts > c.event_ts)
                or (
                    later.collected_at = c.collected_at
                    and later.event_ts = c.event_ts
                    and later.event_id > c.event_id
                )
            )
),

deduplicated as (
    select e.*
    from distinct_events as e
    left join superseded as s
        on s.site_id = e.site_id and s.event_id = e.event_id
    where s.event_id is null
),

-- identifiers of these events that a privacy erasure suppressed (privacy.suppressions: salted
-- hashes, docs/privacy.md): cleaned drops them as it drops blocked values, so a late beacon from an
-- erased cookie or a re-imported record does not bring the person back. Hashed once per distinct
-- value, not per event.
erased as (
    select distinct
        i.site_id,
        i.id_type,
        i.id_value
    from (
        select distinct site_id, 'visitor' as id_type, visitor_id as id_value from deduplicated
        union distinct
        select distinct site_id, 'member', member_id from deduplicated
        union distinct
        select distinct site_id, 'email', email from deduplicated
        union distinct
        select distinct site_id, 'phone', phone from deduplicated
    ) as i
    inner join privacy.suppressions as s
        on
            s.site_id = i.site_id
            and s.id_hash = to_hex(sha256(concat(@privacy_salt, i.site_id, '|', i.id_type, '|', i.id_value)))
),

cleaned as (
    select
        d.* except (is_bot, visitor_id, member_id, email, phone),
        coalesce(d.is_bot, false) as is_bot,
        case
            when lower(trim(d.visitor_id)) in unnest(@blocked_ids) or regexp_contains(d.visitor_id, @blocked_pattern)
                then null
            when ev.id_value is not null then null
            else d.visitor_id
        end as visitor_id,
        case
            when lower(trim(d.member_id)) in unnest(@blocked_ids) or regexp_contains(d.member_id, @blocked_pattern)
                then null
            when em.id_value is not null then null
            else d.member_id
        end as member_id,
        case
            when lower(trim(d.email)) in unnest(@blocked_ids) or regexp_contains(d.email, @blocked_pattern) then null
            when ee.id_value is not null then null
            else d.email
        end as email,
        case
            when lower(trim(d.phone)) in unnest(@blocked_ids) or regexp_contains(d.phone, @blocked_pattern) then null
            when ep.id_value is not null then null
            else d.phone
        end as phone
    from deduplicated as d
    left join erased as ev on ev.site_id = d.site_id and ev.id_type = 'visitor' and ev.id_value = d.visitor_id
    left join erased as em on em.site_id = d.site_id and em.id_type = 'member' and em.id_value = d.member_id
    left join erased as ee on ee.site_id = d.site_id and ee.id_type = 'email' and ee.id_value = d.email
    left join erased as ep on ep.site_id = d.site_id and ep.id_type = 'phone' and ep.id_value = d.phone
    where d.event_date between @date_from and @date_to
),

in_range as (
    select
        *,
        case
            when is_bot then null
            when member_id is not null then concat('member:', member_id)
            when visitor_id is not null then concat('visitor:', visitor_id)
            when email is not null then concat('email:', email)
            when phone is not null then concat('phone:', phone)
        end as node,
        -- land sorts first among events at the same instant: an arrival opens the page it lands on
        case event_type when 'land' then 0 when 'page' then 1 else 2 end as type_rank,
        if(
            event_type = 'land' and is_entry and medium != 'direct',
            concat(
                medium, '|', coalesce(source_name, ''), '|', coalesce(campaign, ''), '|',
                coalesce(search_keyword, '')
            ),
            null
        ) as inflow_key
    from cleaned
),

-- the last refined event of each visitor less than the inactivity gap before the range
lookback as (
    select
        e.site_id,
        e.visitor_id,
        e.event_date,
        e.event_ts,
        case e.event_type when 'land' then 0 when 'page' then 1 else 2 end as type_rank,
        e.event_id,
        e.session_id,
        e.session_date,
        if(
            s.inflow_medium != 'direct',
            concat(
                s.inflow_medium, '|', coalesce(s.inflow_source, ''), '|', coalesce(s.inflow_campaign, ''), '|',
                coalesce(s.inflow_keyword, '')
            ),
            null
        ) as inflow_key
    from refined.events as e
    left join refined.sessions as s
        on s.session_id = e.session_id and s.session_date = e.session_date
    where
        e.event_date = @day_before
        and e.event_ts >= @carry_from_ts
        and e.session_id is not null
),

carried as (
    select *
    from lookback
    where true
    qualify row_number() over (
        partition by site_id, visitor_id order by event_ts desc, type_rank desc, event_id desc
    ) = 1
),

timeline as (
    select
        site_id, visitor_id, event_ts, type_rank, event_id, inflow_key,
        false as is_carried, cast(null as string) as carried_session_id, cast(null as date) as carried_date,
        event_date
    from in_range
    where visitor_id is not null and not is_bot

    union all

    select
        site_id, visitor_id, event_ts, type_rank, event_id, inflow_key,
        true, session_id, session_date, event_date
    from carried
),

gaps as (
    select
        *,
        coalesce(
            timestamp_diff(
                event_ts,
                lag(event_ts) over (partition by site_id, visitor_id order by event_ts, type_rank, event_id),
                second
            ) > @session_gap_seconds,
            true
        ) as after_gap
    from timeline
),

runs as (
    select
        *,
        sum(if(after_gap, 1, 0)) over (
            partition by site_id, visitor_id order by event_ts, type_rank, event_id
            rows between unbounded preceding and current row
        ) as run_number
    from gaps
),

starts as (
    select
        *,
        not is_carried and (
            after_gap
            or (
                inflow_key is not null
                and inflow_key is distinct from last_value(inflow_key ignore nulls) over (
                    partition by site_id, visitor_id, run_number order by event_ts, type_rank, event_id
                    rows between unbounded preceding and 1 preceding
                )
            )
        ) as opens_session
    from runs
),

sessionized as (
    select
        event_id,
        last_value(
            case when is_carried then carried_session_id when opens_session then event_id end ignore nulls
        ) over (
            partition by site_id, visitor_id order by event_ts, type_rank, event_id
            rows between unbounded preceding and current row
        ) as session_id,
        last_value(
            case when is_carried then carried_date when opens_session then event_date end ignore nulls
        ) over (
            partition by site_id, visitor_id order by event_ts, type_rank, event_id
            rows between unbounded preceding and current row
        ) as session_date,
        is_carried
    from starts
),

final as (
    select
        e.event_id, e.site_id, e.event_date, e.event_ts, e.collected_at, e.event_type, e.event_name, e.source,
        e.visitor_id, e.member_id, e.node, coalesce(e.is_bot, false) as is_bot, s.session_id, s.session_date,
        e.page_path, e.page_title, e.device_type, e.os, e.browser, e.region, e.is_entry, e.medium,
        e.source_name, e.campaign, e.click_id_type, e.search_keyword, e.product_id, e.product_name,
        e.order_id, e.revenue, e.item_names, e.sex, e.birth_year, e.email, e.phone
    from in_range as e
    left join sessionized as s
        on s.event_id = e.event_id and not s.is_carried
)

-- date order keeps DuckDB's row groups whole and each day's rows together (docs/segmentlets.md)
select * from final
order by event_date
