-- Why sends failed in the window: deliveries (dry runs left out) with a failed or bounced event, by
-- the provider's code; a delivery reported twice with one code counts once.
with

plan as (
    select distinct delivery_id
    from audiences.deliveries
    where planned_at >= @since_ts and planned_at < @until_ts and not dry_run
)

select
    coalesce(e.code, 'unknown') as code,
    count(distinct e.delivery_id) as deliveries
from audiences.delivery_events as e
inner join plan as p on p.delivery_id = e.delivery_id
where e.event in ('failed', 'bounced')
group by coalesce(e.code, 'unknown')
order by deliveries desc, code
