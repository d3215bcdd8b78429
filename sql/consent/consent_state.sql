-- The current processing consent of a site as of at: per customer and purpose the deciding
-- decision, the latest across every identifier the customer resolves to in refined.identities (a
-- withdrawal beats a grant at the same instant). A subject no identity knows yet stands alone, with
-- a null customer_id. Re-confirmation notices are no decisions. No row means no consent.
with

decisions as (
    select
        c.*,
        i.customer_id,
        coalesce(i.customer_id, concat(c.subject_type, ':', c.subject_value)) as person
    from raw.consent as c
    left join refined.identities as i
        on i.site_id = c.site_id and i.id_type = c.subject_type and i.id_value = c.subject_value
    where c.site_id = @site_id and c.effective_at <= @at and c.source != 'reconfirmation'
),

final as (
    select
        site_id,
        customer_id,
        purpose,
        granted,
        logical_or(granted) over (partition by person, purpose) as ever_granted,
        consent_event_id,
        effective_at,
        subject_type,
        subject_value,
        source
    from decisions
    where true
    qualify row_number() over (
        partition by person, purpose
        order by effective_at desc, granted, consent_event_id desc
    ) = 1
)

select * from final
