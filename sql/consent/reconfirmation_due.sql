-- Re-confirmation (Network Act Art. 50(8)): per customer whose current marketing or night_marketing
-- consent is a grant, when it was last confirmed: the grant, or the last notice sent since, whichever
-- is later. Its two-yearly notice is due two years after that day in Seoul; the service turns
-- confirmed_at into that date (DuckDB would read a date in the session's time zone) and passes the
-- instant before which a confirmation is due by the day asked. The subject of the deciding grant is
-- where the notice is recorded (source reconfirmation, see record_reconfirmation).
with

decisions as (
    select
        i.customer_id,
        c.purpose,
        c.consent_event_id,
        c.subject_type,
        c.subject_value,
        c.effective_at,
        c.granted,
        c.source
    from raw.consent as c
    inner join refined.identities as i
        on i.site_id = c.site_id and i.id_type = c.subject_type and i.id_value = c.subject_value
    where
        c.site_id = @site_id
        and c.effective_at <= @at
        and c.purpose in ('marketing', 'night_marketing')
),

current_consent as (
    select *
    from decisions
    where source != 'reconfirmation'
    qualify row_number() over (
        partition by customer_id, purpose
        order by effective_at desc, granted, consent_event_id desc
    ) = 1
),

notices as (
    select
        customer_id,
        purpose,
        max(effective_at) as noticed_at
    from decisions
    where source = 'reconfirmation'
    group by customer_id, purpose
),

final as (
    select
        c.customer_id,
        c.purpose,
        c.consent_event_id,
        c.subject_type,
        c.subject_value,
        c.effective_at as granted_at,
        if(n.noticed_at >= c.effective_at, n.noticed_at, null) as noticed_at,
        greatest(c.effective_at, coalesce(n.noticed_at, c.effective_at)) as confirmed_at
    from current_consent as c
    left join notices as n on n.customer_id = c.customer_id and n.purpose = c.purpose
    where c.granted
)

select * from final
where confirmed_at < @confirmed_before
