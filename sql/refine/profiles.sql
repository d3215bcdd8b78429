-- refined.profile_staging: the new row of each queued customer (profile_scope.sql) with activity up
-- to run_date, from all of its history; profile_swap_out.sql and profile_swap_in.sql put these rows
-- in place of the old ones. Period values cover [period_start, run_date], lifetime values every day
-- up to run_date; definitions are in docs/segmentlets.md. cluster_id is carried over from the old
-- row: the discovery job owns it. lists_key fingerprints the list inputs (each value with when it
-- was last seen in the period, each visitor id, the list limit): profile_scope.sql reads it to find
-- lists cut at another limit.
insert into refined.profile_staging (
    customer_id, site_id, member_id, visitor_ids, email, phone, birth_year, sex, age, device, os, br, region,
    ref_media_fst, ref_media_lst, ad, cc, kw_inner, kw_outer, pn_odr, pn, rvn, odr, avg_rvn, rvn_ltv, odr_ltv,
    avg_rvn_ltv, rfm, cluster_id, recency_days, sessions, page_views, is_member, has_email, has_phone, rfm_cell,
    r_score, f_score, m_score, first_seen, last_seen, period_start, period_end, computed_at, lists_key
)
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

recent_values as (
    select i.customer_id, t.trait, t.value, max(t.last_ts) as last_ts
    from refined.node_traits as t
    inner join identities as i on i.site_id = t.site_id and i.node = t.node
    where
        t.event_date between @period_start and @run_date
        and t.trait in ('ad', 'cc', 'kw_inner', 'kw_outer', 'pn', 'pn_odr')
    group by i.customer_id, t.trait, t.value
),

inputs as (
    select customer_id, trait, value, last_ts from recent_values
    union all
    select customer_id, 'visitor_ids', id_value, cast(null as timestamp) from identities where id_type = 'visitor'
),

keyed as (
    select
        c.customer_id,
        c.site_id,
        concat(
            cast(@list_limit as string), ':', cast(count(x.trait) as string), ':',
            -- an order-free digest: xor of a 60-bit hash of each input
            cast(coalesce(bit_xor(cast(concat('0x', substr(to_hex(md5(concat(
                x.trait, '|', x.value, '|', coalesce(cast(unix_micros(x.last_ts) as string), '')
            ))), 1, 15)) as int64)), 0) as string)
        ) as lists_key
    from activity as c
    left join inputs as x on x.customer_id = c.customer_id
    group by c.customer_id, c.site_id
),

ranked as (
    select x.customer_id, x.trait, x.value, x.last_ts
    from inputs as x
    inner join keyed as c on c.customer_id = x.customer_id
    where x.trait != 'visitor_ids'
    qualify row_number() over (partition by x.customer_id, x.trait order by x.last_ts desc, x.value) <= @list_limit
),

lists as (
    select customer_id, trait, array_agg(value order by last_ts desc, value) as list
    from ranked
    group by customer_id, trait
),

visitors as (
    select x.customer_id, array_agg(x.value order by x.value) as list
    from inputs as x
    inner join keyed as c on c.customer_id = x.customer_id
    where x.trait = 'visitor_ids'
    group by x.customer_id
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
        @now as computed_at,
        p.cluster_id,
        coalesce(v.list, cast([] as array<string>)) as visitor_ids,
        coalesce(ad.list, cast([] as array<string>)) as ad,
        coalesce(cc.list, cast([] as array<string>)) as cc,
        coalesce(kw_inner.list, cast([] as array<string>)) as kw_inner,
        coalesce(kw_outer.list, cast([] as array<string>)) as kw_outer,
        coalesce(pn_odr.list, cast([] as array<string>)) as pn_odr,
        coalesce(pn.list, cast([] as array<string>)) as pn,
        k.lists_key
    from activity as a
    left join latest_member as m on m.customer_id = a.customer_id
    left join singles as s on s.customer_id = a.customer_id
    left join first_arrival as fa on fa.customer_id = a.customer_id
    left join last_arrival as la on la.customer_id = a.customer_id
    left join refined.rfm as r on r.customer_id = a.customer_id
    left join refined.profiles as p on p.customer_id = a.customer_id
    left join keyed as k on k.customer_id = a.customer_id
    left join visitors as v on v.customer_id = a.customer_id
    left join lists as ad on ad.customer_id = a.customer_id and ad.trait = 'ad'
    left join lists as cc on cc.customer_id = a.customer_id and cc.trait = 'cc'
    left join lists as kw_inner on kw_inner.customer_id = a.customer_id and kw_inner.trait = 'kw_inner'
    left join lists as kw_outer on kw_outer.customer_id = a.customer_id and kw_outer.trait = 'kw_outer'
    left join lists as pn_odr on pn_odr.customer_id = a.customer_id and pn_odr.trait = 'pn_odr'
    left join lists as pn on pn.customer_id = a.customer_id and pn.trait = 'pn'
)

select
    customer_id, site_id, member_id, visitor_ids, email, phone, birth_year, sex, age, device, os, br, region,
    ref_media_fst, ref_media_lst, ad, cc, kw_inner, kw_outer, pn_odr, pn, rvn, odr, avg_rvn, rvn_ltv, odr_ltv,
    avg_rvn_ltv, rfm, cluster_id, recency_days, sessions, page_views, is_member, has_email, has_phone, rfm_cell,
    r_score, f_score, m_score, first_seen, last_seen, period_start, period_end, computed_at, lists_key
from final
