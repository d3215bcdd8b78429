-- One page of a segment's members on one site, with the columns shared/activation/customer_file.py
-- reads each key from (PROFILE_COLUMNS), in customer_id order after @after: keyset pages keep each
-- page's work and memory small however large the segment.
-- FN and LN come from raw.user: the latest non-blank value recorded under any of the customer's
-- member or visitor ids (profiles keep no names). Columns no table holds yet are NULL.
with

members as (
    select customer_id
    from audiences.segment_members
    where segment_id = @segment_id and site_id = @site_id and customer_id > @after
    order by customer_id
    limit @page_rows
),

ids as (
    select
        m.customer_id,
        i.id_type,
        i.id_value
    from members as m
    inner join refined.identities as i on i.customer_id = m.customer_id
    where i.site_id = @site_id and i.id_type in ('member', 'visitor')
),

named as (
    select
        ids.customer_id,
        u.given_name,
        u.family_name,
        u.event_ts,
        u.event_id
    from raw.user as u
    inner join ids on ids.id_type = 'member' and u.member_id = ids.id_value
    where u.site_id = @site_id and u.event_date >= date '1900-01-01'
    union all
    select
        ids.customer_id,
        u.given_name,
        u.family_name,
        u.event_ts,
        u.event_id
    from raw.user as u
    inner join ids on ids.id_type = 'visitor' and u.visitor_id = ids.id_value
    where u.site_id = @site_id and u.event_date >= date '1900-01-01'
),

given as (
    select
        customer_id,
        given_name
    from named
    where trim(given_name) != ''
    qualify row_number() over (partition by customer_id order by event_ts desc, event_id desc) = 1
),

family as (
    select
        customer_id,
        family_name
    from named
    where trim(family_name) != ''
    qualify row_number() over (partition by customer_id order by event_ts desc, event_id desc) = 1
),

final as (
    select
        m.customer_id,
        p.email,
        p.phone,
        g.given_name,
        f.family_name,
        p.sex,
        p.birth_year,
        cast(null as int64) as birth_month,
        cast(null as int64) as birth_day,
        cast(null as string) as city,
        p.region,
        cast(null as string) as zip,
        cast(null as string) as country,
        cast(null as string) as madid,
        p.member_id
    from members as m
    left join refined.profiles as p on p.customer_id = m.customer_id and p.site_id = @site_id
    left join given as g on g.customer_id = m.customer_id
    left join family as f on f.customer_id = m.customer_id
)

select * from final
order by customer_id
