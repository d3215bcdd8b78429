-- What publishing changed in the window: ledger rows added, rows removed by reason, and the entries
-- the platforms could not read (accepted batches only; a batch logged twice counts once).
with

log as (
    select
        log_id,
        num_invalid_entries
    from audiences.publish_log
    where sent_at >= @since_ts and sent_at < @until_ts and outcome = 'ok'
    qualify row_number() over (partition by log_id order by sent_at) = 1
)

select
    'added' as change,
    '' as reason,
    count(*) as entries
from audiences.publication_ledger
where added_at >= @since_ts and added_at < @until_ts
union all
select
    'removed' as change,
    coalesce(removed_reason, 'unknown') as reason,
    count(*) as entries
from audiences.publication_ledger
where removed_at >= @since_ts and removed_at < @until_ts
group by removed_reason
union all
select
    'invalid' as change,
    '' as reason,
    coalesce(sum(num_invalid_entries), 0) as entries
from log
