-- A campaign run's failures: per channel and provider code, the deliveries that failed or bounced
-- with it (a delivery reported twice counts once), so a funnel's "failed" says why.
select
    channel,
    coalesce(code, 'unknown') as code,
    count(distinct delivery_id) as deliveries
from audiences.delivery_events
where campaign_id = @campaign_id and run_id = @run_id and event in ('failed', 'bounced')
group by channel, coalesce(code, 'unknown')
order by channel, deliveries desc, code
