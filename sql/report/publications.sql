-- Per publication: the audience the platform holds now (rows and customers in the ledger not yet
-- removed) and its last run's delta from the publish log (rows per operation, invalid entries), one
-- copy per logged batch.
with

held as (
    select
        publication_id,
        countif(removed_at is null) as held_rows,
        count(distinct if(removed_at is null, customer_id, null)) as audience,
        max(destination_id) as destination_id
    from audiences.publication_ledger
    group by publication_id
),

log as (
    select
        log_id,
        run_id,
        publication_id,
        op,
        `rows`,
        num_invalid_entries,
        sent_at,
        outcome
    from audiences.publish_log
    where true
    qualify row_number() over (partition by log_id order by sent_at) = 1
),

last_run as (
    select
        publication_id,
        run_id,
        max(sent_at) as sent_at
    from log
    group by publication_id, run_id
    qualify row_number() over (partition by publication_id order by max(sent_at) desc, run_id desc) = 1
),

delta as (
    select
        l.publication_id,
        r.run_id,
        r.sent_at,
        sum(if(l.op = 'add' and l.outcome = 'ok', l.`rows`, 0)) as added,
        sum(if(l.op = 'remove' and l.outcome = 'ok', l.`rows`, 0)) as removed,
        sum(if(l.op = 'replace' and l.outcome = 'ok', l.`rows`, 0)) as replaced,
        sum(if(l.outcome = 'ok', coalesce(l.num_invalid_entries, 0), 0)) as invalid,
        countif(l.outcome != 'ok') as refused_batches
    from log as l
    inner join last_run as r on r.publication_id = l.publication_id and r.run_id = l.run_id
    group by l.publication_id, r.run_id, r.sent_at
)

select
    coalesce(h.publication_id, d.publication_id) as publication_id,
    h.destination_id,
    coalesce(h.audience, 0) as audience,
    coalesce(h.held_rows, 0) as held_rows,
    d.run_id as last_run,
    d.sent_at as last_sent_at,
    coalesce(d.added, 0) as added,
    coalesce(d.removed, 0) as removed,
    coalesce(d.replaced, 0) as replaced,
    coalesce(d.invalid, 0) as invalid,
    coalesce(d.refused_batches, 0) as refused_batches
from held as h
full outer join delta as d on d.publication_id = h.publication_id
order by publication_id
