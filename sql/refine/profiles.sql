-- refined.profiles, step 3 of 3: every column but the lists (profile_lists.sql) of each queued
-- customer (profile_scope.sql) from all of its history up to run_date (profile_gone.sql deletes the
-- queued customers left without any). Period values cover [period_start, run_date], lifetime
-- values every day up to run_date; definitions are in docs/segmentlets.md. cluster_id belongs to
-- the discovery job and is never written here.
update refined.profiles as t
set
    site_id = s.site_id, member_id = s.member_id, email = s.email, phone = s.phone, birth_year = s.birth_year,
    sex = s.sex, age = s.age, device = s.device, os = s.os, br = s.br, region = s.region,
    ref_media_fst = s.ref_media_fst, ref_media_lst = s.ref_media_lst, rvn = s.rvn, odr = s.odr, avg_rvn = s.avg_rvn,
    rvn_ltv = s.rvn_ltv, odr_ltv = s.odr_ltv, avg_rvn_ltv = s.avg_rvn_ltv, rfm = s.rfm,
    recency_days = s.recency_days, sessions = s.sessions, page_views = s.page_views, is_member = s.is_member,
    has_email = s.has_email, has_phone = s.has_phone, rfm_cell = s.rfm_cell, r_score = s.r_score,
    f_score = s.f_score, m_score = s.m_score, first_seen = s.first_seen, last_seen = s.last_seen,
    period_start = s.period_start, period_end = s.period_end, computed_at = s.computed_at
from (
    with

    -- the nodes of the queued customers
    identities as (
        select site_id, node, id_type, id_value, customer_id
        from refined.identities
        where customer_id in (select q.customer_id from refined.profile_queue as q)
    ),

    days as (
        select i.customer_id, i.site_id, i.id_type, i.id_value, d.* except (site_id, node)
        from refined.node_days as d
        inner join identities as i on i.site_id = d.site_id and i.node = d.node
        where d.event_date <= @run_date
    ),

    activity as (
        select
            customer_id,
            any_value(site_id) as site_id,
            min(first_ts) as first_seen,
            max(last_ts) as last_seen,
            max(event_date) as last_date,
            sum(orders) as odr_ltv,
            sum(revenue) as rvn_ltv,
            sum(if(event_date >= @period_start, orders, 0)) as odr,
            sum(if(event_date >= @period_start, revenue, 0)) as rvn,
            sum(if(event_date >= @period_start, sessions, 0)) as sessions,
            sum(if(event_date >= @period_start, page_views, 0)) as page_views
        from days
        group by customer_id
    ),

    latest_member as (
        select customer_id, id_value as member_id
        from days
        where id_type = 'member'
        qualify row_number() over (partition by customer_id order by last_ts desc, id_value) = 1
    ),

    -- attribute values by customer: the period for the device and place, lifetime for the rest
    traits as (
        select
            i.customer_id,
            t.trait,
            t.value,
            sum(t.events) as events,
            min(t.first_ts) as first_ts,
            max(t.last_ts) as last_ts
        from refined.node_traits as t
        inner join identities as i on i.site_id = t.site_id and i.node = t.node
        where
            t.event_date <= @run_date
            and (
                (t.trait in ('device', 'os', 'br', 'region') and t.event_date >= @period_start)
                or t.trait in ('arrival', 'sex', 'birth_year', 'email', 'phone')
            )
        group by i.customer_id, t.trait, t.value
    ),

    most_frequent as (
        select customer_id, trait, value
        from traits
        where trait in ('device', 'os', 'br', 'region')
        qualify row_number() over (partition by customer_id, trait order by events desc, last_ts desc, value) = 1
    ),

    latest as (
        select customer_id, trait, value
        from traits
        where trait in ('sex', 'birth_year', 'email', 'phone')
        qualify row_number() over (partition by customer_id, trait order by last_ts desc, value) = 1
    ),

    first_arrival as (
        select customer_id, value as medium
        from traits
        where trait = 'arrival'
        qualify row_number() over (partition by customer_id order by first_ts, value) = 1
    ),

    -- the last non-direct arrival; direct when every arrival was direct
    last_arrival as (
        select customer_id, value as medium
        from traits
        where trait = 'arrival'
        qualify row_number() over (partition by customer_id order by value != 'direct' desc, last_ts desc, value) = 1
    ),

    singles as (
        select
            customer_id,
            max(if(trait = 'device', value, null)) as device,
            max(if(trait = 'os', value, null)) as os,
            max(if(trait = 'br', value, null)) as br,
            max(if(trait = 'region', value, null)) as region,
            max(if(trait = 'sex', value, null)) as sex,
            safe_cast(max(if(trait = 'birth_year', value, null)) as int64) as birth_year,
            max(if(trait = 'email', value, null)) as email,
            max(if(trait = 'phone', value, null)) as phone
        from (
            select customer_id, trait, value from most_frequent
            union all
            select customer_id, trait, value from latest
        ) as picked
        group by customer_id
    ),

    final as (
        select
            a.customer_id,
            a.site_id,
            m.member_id,
            s.email,
            s.phone,
            s.birth_year,
            s.sex,
            if(s.birth_year <= extract(year from @run_date), extract(year from @run_date) - s.birth_year, null) as age,
            s.device,
            s.os,
            s.br,
            s.region,
            fa.medium as ref_media_fst,
            la.medium as ref_media_lst,
            a.rvn,
            a.odr,
            if(a.odr > 0, round(a.rvn / a.odr, 2), null) as avg_rvn,
            a.rvn_ltv,
            a.odr_ltv,
            if(a.odr_ltv > 0, round(a.rvn_ltv / a.odr_ltv, 2), null) as avg_rvn_ltv,
            r.rfm_group as rfm,
            date_diff(@run_date, a.last_date, day) as recency_days,
            a.sessions,
            a.page_views,
            m.member_id is not null as is_member,
            s.email is not null as has_email,
            s.phone is not null as has_phone,
            r.rfm_cell,
            r.r_score,
            r.f_score,
            r.m_score,
            a.first_seen,
            a.last_seen,
            @period_start as period_start,
            @run_date as period_end,
            @now as computed_at
        from activity as a
        left join latest_member as m on m.customer_id = a.customer_id
        left join singles as s on s.customer_id = a.customer_id
        left join first_arrival as fa on fa.customer_id = a.customer_id
        left join last_arrival as la on la.customer_id = a.customer_id
        left join refined.rfm as r on r.customer_id = a.customer_id
    )

    select * from final
) as s
where t.customer_id = s.customer_id
