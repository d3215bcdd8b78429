-- The eligible members of this run's gate whose staged row cannot be kept, with the values
-- shared/activation/customer_file.py hashes (PROFILE_COLUMNS) and their fingerprint: a digest of
-- those values, the keys and the spelling rules' version (the spelling parameter). A staged row is
-- kept when it was staged eligible on the same consent row from values with the same fingerprint;
-- every other eligible member (new, newly eligible, another consent row, a changed value) is
-- hashed again.
-- FN and LN come from raw.user: the latest non-blank value recorded under any of the customer's
-- member or visitor ids (profiles keep no names). One pass over the whole segment, in SQL: a run
-- reads into Python only the members listed here.
insert into audiences.publication_changes (
    change_id, publication_id, run_id, site_id, customer_id, reason, consent_event_id, fingerprint,
    email, phone, given_name, family_name, sex, birth_year, region, member_id
)
with

gate as (
    select
        site_id,
        customer_id,
        reason,
        consent_event_id
    from audiences.publication_gate
    where publication_id = @publication_id and reason = 'eligible'
),

ids as (
    select
        g.site_id,
        g.customer_id,
        i.id_type,
        i.id_value
    from gate as g
    inner join refined.identities as i on i.customer_id = g.customer_id and i.site_id = g.site_id
    where i.id_type in ('member', 'visitor')
),

named as (
    select
        ids.customer_id,
        u.given_name,
        u.family_name,
        u.event_ts,
        u.event_id
    from raw.user as u
    inner join ids on ids.id_type = 'member' and u.member_id = ids.id_value and u.site_id = ids.site_id
    where u.event_date >= date '1900-01-01'
    union all
    select
        ids.customer_id,
        u.given_name,
        u.family_name,
        u.event_ts,
        u.event_id
    from raw.user as u
    inner join ids on ids.id_type = 'visitor' and u.visitor_id = ids.id_value and u.site_id = ids.site_id
    where u.event_date >= date '1900-01-01'
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

valued as (
    select
        g.site_id,
        g.customer_id,
        g.reason,
        g.consent_event_id,
        p.email,
        p.phone,
        gn.given_name,
        f.family_name,
        p.sex,
        p.birth_year,
        p.region,
        p.member_id
    from gate as g
    left join refined.profiles as p on p.customer_id = g.customer_id and p.site_id = g.site_id
    left join given as gn on gn.customer_id = g.customer_id
    left join family as f on f.customer_id = g.customer_id
),

fingerprinted as (
    select
        *,
        to_hex(md5(to_json_string(struct(
            @spelling as spelling, email, phone, given_name, family_name, sex, birth_year, region, member_id
        )))) as fingerprint
    from valued
),

final as (
    select
        concat(@publication_id, '|', v.customer_id) as change_id,
        @publication_id as publication_id,
        @run_id as run_id,
        v.site_id,
        v.customer_id,
        v.reason,
        v.consent_event_id,
        v.fingerprint,
        v.email,
        v.phone,
        v.given_name,
        v.family_name,
        v.sex,
        v.birth_year,
        v.region,
        v.member_id
    from fingerprinted as v
    left join audiences.publication_staging as s
        on
            s.publication_id = @publication_id
            and s.customer_id = v.customer_id
            and s.site_id = v.site_id
            and s.reason = 'eligible'
            and s.consent_event_id is not distinct from v.consent_event_id
            and s.fingerprint = v.fingerprint
    where s.customer_id is null
)

select * from final
