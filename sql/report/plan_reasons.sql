-- The window's campaign plan (dry runs left out; one copy per delivery): delivery rows by outcome and
-- reason, the drops between planned and eligible.
with

plan as (
    select
        delivery_id,
        outcome,
        reason
    from audiences.deliveries
    where planned_at >= @since_ts and planned_at < @until_ts and not dry_run
    qualify row_number() over (partition by delivery_id order by planned_at) = 1
)

select
    outcome,
    reason,
    count(*) as deliveries
from plan
group by outcome, reason
order by outcome, deliveries desc, reason
