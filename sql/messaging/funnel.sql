-- A campaign run's delivery rows by channel, outcome and reason, first channel and fallbacks apart:
-- the funnel audience -> eligible -> held / skipped by reason -> planned sends.
with

rows as (
    select
        delivery_id,
        channel,
        outcome,
        reason,
        fallback_of is not null as fallback
    from audiences.deliveries
    where campaign_id = @campaign_id and run_id = @run_id
    qualify row_number() over (partition by delivery_id order by planned_at) = 1
)

select
    channel,
    fallback,
    outcome,
    reason,
    count(*) as deliveries
from rows
group by channel, fallback, outcome, reason
order by fallback, channel, outcome, reason
