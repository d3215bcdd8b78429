-- The runs of a triggered campaign planned lately that have batches, with their
-- last batch number: a tick publishes the ones a failed tick left unpublished, and numbers a run's
-- new batches after its last. Dry runs publish nothing.
select
    run_id,
    max(batch) as batches
from audiences.deliveries
where campaign_id = @campaign_id and planned_at >= @since and batch is not null and not dry_run
group by run_id
order by run_id
