-- A campaign run's delivery rows and fan-out batches so far: a retried plan finds its rows, writes
-- none, and publishes the batches it had not.
select
    count(*) as planned,
    coalesce(max(batch), 0) as batches
from audiences.deliveries
where campaign_id = @campaign_id and run_id = @run_id
