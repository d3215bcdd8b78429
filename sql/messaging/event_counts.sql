-- A campaign run's results: per channel and event, the deliveries that have one (copies of an
-- event, or the same event reported twice, count once).
select
    channel,
    event,
    count(distinct delivery_id) as deliveries
from audiences.delivery_events
where campaign_id = @campaign_id and run_id = @run_id
group by channel, event
order by channel, event
