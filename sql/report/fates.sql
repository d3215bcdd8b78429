-- What stopped deliveries between the funnel's message stages in the window (dry runs left out; one
-- copy per delivery): planned to send but never sent, and sent but never reported delivered, each
-- by its latest refusal (event:code: failed, bounced, skipped, held, opted_out, unknown), else
-- not_sent_yet / no_delivery_report.
with

plan as (
    select
        delivery_id,
        outcome
    from audiences.deliveries
    where planned_at >= @since_ts and planned_at < @until_ts and not dry_run
    qualify row_number() over (partition by delivery_id order by planned_at) = 1
),

events as (
    select
        event_id,
        delivery_id,
        event,
        code,
        at
    from audiences.delivery_events
    where delivery_id in (select delivery_id from plan)
),

flags as (
    select
        delivery_id,
        logical_or(event = 'sent') as sent,
        logical_or(event = 'delivered') as delivered
    from events
    group by delivery_id
),

refusal as (
    select
        delivery_id,
        concat(event, ':', coalesce(code, '-')) as reason
    from events
    where event in ('failed', 'bounced', 'skipped', 'held', 'opted_out', 'unknown')
    qualify row_number() over (partition by delivery_id order by at desc, event_id desc) = 1
),

fates as (
    select
        'sent' as stage,
        coalesce(r.reason, 'not_sent_yet') as reason
    from plan as p
    left join flags as f on f.delivery_id = p.delivery_id
    left join refusal as r on r.delivery_id = p.delivery_id
    where p.outcome = 'send' and not coalesce(f.sent, false)
    union all
    select
        'delivered' as stage,
        coalesce(r.reason, 'no_delivery_report') as reason
    from plan as p
    inner join flags as f on f.delivery_id = p.delivery_id
    left join refusal as r on r.delivery_id = p.delivery_id
    where f.sent and not f.delivered
)

select
    stage,
    reason,
    count(*) as deliveries
from fates
group by stage, reason
order by stage, deliveries desc, reason
