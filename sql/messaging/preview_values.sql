-- What a template may say of a few customers of one site (by id), read as recipients.sql
-- reads it for a delivery: refined.profiles' columns, and the names from raw.user, the latest
-- non-blank value recorded under any of the customer's member or visitor ids. A campaign preview
-- has no delivery rows to start from, so it names the customers.
with

customers as (
    select
        @site_id as site_id,
        customer_id
    from unnest(@customer_ids) as customer_id
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
    inner join ids
        on (ids.id_type = 'member' and u.member_id = ids.id_value)
        or (ids.id_type = 'visitor' and u.visitor_id = ids.id_value)
    where u.site_id = @site_id and u.event_date >= date '1900-01-01'
),

names as (
    select
        customer_id,
        array_agg(given_name ignore nulls order by event_ts desc, event_id desc)[safe_offset(0)] as given_name,
        array_agg(family_name ignore nulls order by event_ts desc, event_id desc)[safe_offset(0)] as family_name,
        array_agg(full_name ignore nulls order by event_ts desc, event_id desc)[safe_offset(0)] as full_name
    from named
    group by customer_id
)

select
    c.customer_id,
    p.* except (customer_id),
    n.* except (customer_id)
from customers as c
left join profiles as p on p.customer_id = c.customer_id
left join names as n on n.customer_id = c.customer_id
order by c.customer_id
