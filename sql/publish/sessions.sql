-- A publication's replace sessions, newest first, from the log: the last batch accepted, whether a
-- batch with last_batch_flag ended it, and whether its latest attempt found the audience stuck in
-- another open session. The log is append-only, so a row may be stored twice: one copy per log_id.
with

batches as (
    select
        session_id,
        batch_seq,
        attempt,
        outcome,
        last_batch,
        error,
        sent_at
    from audiences.publish_log
    where publication_id = @publication_id and op = 'replace' and session_id is not null
    qualify row_number() over (partition by log_id order by sent_at) = 1
),

latest as (
    select
        session_id,
        outcome as latest_outcome,
        error as latest_error
    from batches
    where true  -- BigQuery takes QUALIFY only beside WHERE, GROUP BY or HAVING
    qualify row_number() over (partition by session_id order by sent_at desc, batch_seq desc, attempt desc) = 1
),

sessions as (
    select
        session_id,
        min(sent_at) as started_at,
        max(case when outcome = 'ok' then batch_seq else 0 end) as last_ok_seq,
        max(case when outcome = 'ok' and last_batch then 1 else 0 end) = 1 as ended
    from batches
    group by session_id
),

final as (
    select
        s.session_id,
        s.started_at,
        s.last_ok_seq,
        s.ended,
        l.latest_outcome,
        l.latest_error
    from sessions as s
    inner join latest as l on l.session_id = s.session_id
)

select * from final
order by started_at desc, session_id
