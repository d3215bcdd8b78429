-- The current channel subscriptions of a site as of at: per channel and address the latest record
-- (an unsubscribe beats a subscribe at the same instant). No row means never subscribed.
with

final as (
    select
        site_id,
        channel,
        address,
        subscribed,
        subscription_event_id,
        effective_at,
        source,
        reason,
        member_id,
        visitor_id
    from raw.subscription
    where site_id = @site_id and effective_at <= @at
    qualify row_number() over (
        partition by channel, address
        order by effective_at desc, subscribed, subscription_event_id desc
    ) = 1
)

select * from final
