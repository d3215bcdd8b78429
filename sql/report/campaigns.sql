-- Per campaign and channel over the window (dry runs left out; one copy per delivery and each event
-- once per delivery): planned rows, fallbacks, the plan's outcomes, and what became of them.
-- held: planned as a hold or held at send time; capped: skipped by the frequency cap, either time.
with

plan as (
    select
        delivery_id,
        campaign_id,
        channel,
        outcome,
        reason,
        fallback_of is not null as fallback
    from audiences.deliveries
    where planned_at >= @since_ts and planned_at < @until_ts and not dry_run
    qualify row_number() over (partition by delivery_id order by planned_at) = 1
),

events as (
    select
        delivery_id,
        logical_or(event = 'sent') as sent,
        logical_or(event = 'delivered') as delivered,
        logical_or(event in ('failed', 'bounced')) as failed,
        logical_or(event = 'held') as held,
        logical_or(event = 'skipped' and code = 'frequency_capped') as capped,
        logical_or(event = 'clicked') as clicked,
        logical_or(event = 'unsubscribed') as unsubscribed,
        logical_or(event = 'complained') as complained
    from audiences.delivery_events
    where delivery_id in (select delivery_id from plan)
    group by delivery_id
)

select
    p.campaign_id,
    p.channel,
    count(*) as planned,
    countif(p.fallback) as fallbacks,
    countif(p.outcome = 'send') as eligible,
    countif(p.outcome = 'skip') as skipped,
    countif(p.outcome = 'hold' or coalesce(e.held, false)) as held,
    countif(p.reason = 'frequency_capped' or coalesce(e.capped, false)) as capped,
    countif(coalesce(e.sent, false)) as sent,
    countif(coalesce(e.delivered, false)) as delivered,
    countif(coalesce(e.failed, false)) as failed,
    countif(coalesce(e.clicked, false)) as clicked,
    countif(coalesce(e.unsubscribed, false)) as unsubscribed,
    countif(coalesce(e.complained, false)) as complained
from plan as p
left join events as e on e.delivery_id = p.delivery_id
group by p.campaign_id, p.channel
order by p.campaign_id, p.channel
