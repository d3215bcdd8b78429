-- The delivery rows @delivery_ids names (one copy each), with what a template may say of the
-- recipient (shared/messaging/templates.py PROFILE_VARIABLES): refined.profiles' columns, and the
-- names from raw.user, the latest non-blank value recorded under any of the customer's member or
-- visitor ids (profiles keep no names); and `sent`, the advertising messages the customer was sent
-- since @since (the frequency cap's window; none when null), counted as sent_counts.sql counts.
-- One statement per batch. The ids come as one comma-separated string: binding one string costs
-- nothing, where DuckDB's Python client spends ~0.2 ms on each element of an array parameter.
with

wanted as (
    select delivery_id
    from unnest(split(@delivery_ids, ',')) as delivery_id
),

deliveries as (
    select
        delivery_id,
        campaign_id,
        run_id,
        site_id,
        customer_id,
        channel,
        address,
        kind,
        outcome,
        reason,
        release_at,
        fallback_of,
        dry_run
    from audiences.deliveries
    where delivery_id in (select w.delivery_id from wanted as w)
    qualify row_number() over (partition by delivery_id order by planned_at) = 1
),

customers as (
    select distinct
        site_id,
        customer_id
    from deliveries
),

profiles as (
    select
        p.customer_id,
        p.member_id,
        p.email,
        p.phone,
        p.region,
        p.rfm,
        p.age,
        p.recency_days,
        p.odr_ltv,
        p.rvn_ltv
    from refined.profiles as p
    inner join customers as c on c.customer_id = p.customer_id and c.site_id = p.site_id
    qualify row_number() over (partition by p.customer_id order by p.computed_at desc) = 1
),

ids as (
    select
        c.site_id,
        c.customer_id,
        i.id_type,
        i.id_value
    from customers as c
    inner join refined.identities as i on i.customer_id = c.customer_id and i.site_id = c.site_id
    where i.id_type in ('member', 'visitor')
),

named as (
    select
        ids.customer_id,
        if(trim(u.given_name) != '', u.given_name, null) as given_name,  -- a blank is no name
        if(trim(u.family_name) != '', u.family_name, null) as family_name,
        if(trim(u.full_name) != '', u.full_name, null) as full_name,
        u.event_ts,
        u.event_id
    from raw.user as u
    inner join ids on ids.id_type = 'member' and u.member_id = ids.id_value and u.site_id = ids.site_id
    where u.event_date >= date '1900-01-01'
    union all
    select
        ids.customer_id,
        if(trim(u.given_name) != '', u.given_name, null) as given_name,  -- a blank is no name
        if(trim(u.family_name) != '', u.family_name, null) as family_name,
        if(trim(u.full_name) != '', u.full_name, null) as full_name,
        u.event_ts,
        u.event_id
    from raw.user as u
    inner join ids on ids.id_type = 'visitor' and u.visitor_id = ids.id_value and u.site_id = ids.site_id
    where u.event_date >= date '1900-01-01'
),

-- per customer, the latest non-blank value of each name (a handful of raw.user rows each)
names as (
    select
        customer_id,
        array_agg(given_name ignore nulls order by event_ts desc, event_id desc)[safe_offset(0)] as given_name,
        array_agg(family_name ignore nulls order by event_ts desc, event_id desc)[safe_offset(0)] as family_name,
        array_agg(full_name ignore nulls order by event_ts desc, event_id desc)[safe_offset(0)] as full_name
    from named
    group by customer_id
),

results as (
    select distinct
        e.delivery_id,
        e.customer_id
    from audiences.delivery_events as e
    inner join customers as c on c.customer_id = e.customer_id and c.site_id = e.site_id
    where e.at >= cast(@since as timestamp) and e.event in ('sent', 'unknown')
),

sent as (
    select
        r.customer_id,
        count(distinct r.delivery_id) as sent
    from results as r
    inner join audiences.deliveries as d on d.delivery_id = r.delivery_id
    where d.kind = 'advertising' and d.planned_at >= timestamp_sub(cast(@since as timestamp), interval 30 day)
    group by r.customer_id
)

select
    d.*,
    p.member_id,
    p.email,
    p.phone,
    p.region,
    p.rfm,
    p.age,
    p.recency_days,
    p.odr_ltv,
    p.rvn_ltv,
    n.given_name,
    n.family_name,
    n.full_name,
    coalesce(s.sent, 0) as sent
from deliveries as d
left join profiles as p on p.customer_id = d.customer_id
left join names as n on n.customer_id = d.customer_id
left join sent as s on s.customer_id = d.customer_id
order by d.delivery_id
