-- The plan's fan-out batches of a run, @first_batch to @last_batch: the delivery ids each carries
-- on the sends topic, in the order the plan numbered them (a retried plan publishes the same).
select distinct
    batch,
    delivery_id
from audiences.deliveries
where
    campaign_id = @campaign_id
    and run_id = @run_id
    and batch between @first_batch and @last_batch
order by batch, delivery_id
