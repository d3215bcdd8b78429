-- The one gate: for each customer of an audience (a segment's members, or a list of customer ids)
-- and, for a message, its channel: eligible or the reason why not, the ledger rows that decided it,
-- and the states themselves (the final check before a send re-applies shared/consent/policy.py).
-- Everything as of the send time at: decisions and records effective later do not count yet.
-- Consent: the latest decision for the purpose across every identifier the customer resolves to in
-- refined.identities; a withdrawal beats a grant at the same instant; none at all is a denial.
-- Re-confirmation notices are proof that a notice went out, never decisions.
-- Subscription: among the customer's addresses on the channel (identity nodes of the channel's
-- address type, and addresses recorded under one of the customer's visitor or member ids) a
-- subscribed one, else an unsubscribed one, else one never subscribed; per address the latest
-- record decides, an unsubscribe beating a subscribe at the same instant.
-- A web push address comes with its subscription's keys (push_p256dh, push_auth: the deciding
-- record's, which a subscribe from the tracker carries), so the sender needs nothing else.
-- Suppression: a privacy.suppressions hash of any identifier or address of the customer (the hash
-- spells the identifier's type, so it alone decides).
-- Reasons in policy.py's order: suppressed, consent, subscription, the night rule. A null purpose
-- is an informational message (no consent needed); a null channel a use without a message.
with

audience as (
    select customer_id
    from audiences.segment_members
    where site_id = @site_id and segment_id = cast(@segment_id as string)
    union distinct
    select customer_id
    from unnest(split(@customer_ids, ',')) as customer_id
    where customer_id != ''
),

nodes as (
    select
        a.customer_id,
        i.id_type,
        i.id_value
    from audience as a
    inner join refined.identities as i on i.customer_id = a.customer_id
    where i.site_id = @site_id
),

decisions as (
    select
        n.customer_id,
        c.purpose,
        c.consent_event_id,
        c.effective_at,
        c.granted
    from raw.consent as c
    inner join nodes as n on n.id_type = c.subject_type and n.id_value = c.subject_value
    where
        c.site_id = @site_id
        and c.effective_at <= @at
        and c.source != 'reconfirmation'
        and (c.purpose = cast(@purpose as string) or (@night_rule and c.purpose = 'night_marketing'))
),

-- the deciding decision per customer and purpose; copies of a row share its id and its content
consent as (
    select
        customer_id,
        purpose,
        consent_event_id,
        effective_at,
        granted,
        logical_or(granted) over (partition by customer_id, purpose) as ever_granted
    from decisions
    where true
    qualify row_number() over (
        partition by customer_id, purpose
        order by effective_at desc, granted, consent_event_id desc
    ) = 1
),

addresses as (
    select
        customer_id,
        id_value as address
    from nodes
    where id_type = cast(@address_type as string)
    union distinct
    select
        n.customer_id,
        s.address
    from raw.subscription as s
    inner join nodes as n on n.id_value = s.member_id
    where
        s.site_id = @site_id and s.channel = cast(@channel as string) and s.effective_at <= @at
        and n.id_type = 'member'
    union distinct
    select
        n.customer_id,
        s.address
    from raw.subscription as s
    inner join nodes as n on n.id_value = s.visitor_id
    where
        s.site_id = @site_id and s.channel = @channel and s.effective_at <= @at
        and n.id_type = 'visitor'
),

records as (
    select
        address,
        subscription_event_id,
        subscribed,
        effective_at,
        json_value(push_keys, '$.p256dh') as push_p256dh,
        json_value(push_keys, '$.auth') as push_auth
    from raw.subscription
    where
        site_id = @site_id and channel = @channel and effective_at <= @at
        and address in (select a.address from addresses as a)
    qualify row_number() over (
        partition by address
        order by effective_at desc, subscribed, subscription_event_id desc
    ) = 1
),

subscription as (
    select
        a.customer_id,
        a.address,
        r.subscription_event_id,
        r.subscribed,
        r.effective_at,
        r.push_p256dh,
        r.push_auth
    from addresses as a
    left join records as r on r.address = a.address
    where true
    qualify row_number() over (
        partition by a.customer_id
        order by case when r.subscribed then 0 when not r.subscribed then 1 else 2 end, r.effective_at desc, a.address
    ) = 1
),

identifiers as (
    select
        customer_id,
        id_type,
        id_value
    from nodes
    union distinct
    select
        customer_id,
        cast(@address_type as string) as id_type,
        address as id_value
    from addresses
    where @address_type is not null
),

suppressed as (
    select distinct k.customer_id
    from identifiers as k
    inner join privacy.suppressions as p
        on p.id_hash = to_hex(sha256(concat(@privacy_salt, @site_id, '|', k.id_type, '|', k.id_value)))
    where p.site_id = @site_id
),

final as (
    select
        a.customer_id,
        cast(@channel as string) as channel,
        s.address,
        case
            when x.customer_id is not null then 'suppressed'
            when @purpose is not null and (c.granted is null or not (c.granted or c.ever_granted)) then 'no_consent'
            when @purpose is not null and not c.granted then 'withdrawn'
            when @channel is not null and s.address is null then 'no_address'
            when @channel is not null and s.subscribed is null then 'no_subscription'
            when @channel is not null and not s.subscribed then 'unsubscribed'
            when @night_rule and not coalesce(n.granted, false) then 'night_not_allowed'
            else 'eligible'
        end as reason,
        c.consent_event_id,
        c.granted as consent_granted,
        c.ever_granted as consent_ever_granted,
        c.effective_at as consent_effective_at,
        s.subscription_event_id,
        s.subscribed,
        s.effective_at as subscription_effective_at,
        s.push_p256dh,
        s.push_auth,
        n.consent_event_id as night_consent_event_id,
        n.granted as night_consent_granted,
        n.ever_granted as night_consent_ever_granted,
        n.effective_at as night_consent_effective_at,
        x.customer_id is not null as suppressed
    from audience as a
    left join consent as c on c.customer_id = a.customer_id and c.purpose = @purpose
    left join consent as n on n.customer_id = a.customer_id and n.purpose = 'night_marketing' and @night_rule
    left join subscription as s on s.customer_id = a.customer_id
    left join suppressed as x on x.customer_id = a.customer_id
)

select * from final
