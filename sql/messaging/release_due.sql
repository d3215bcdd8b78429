-- Held deliveries whose release time has come, with no released event since the hold: holds the
-- plan decided (outcome hold) and holds deliver recorded (held events), dry runs never. A hold is
-- known by `hold_key`: 'plan', or the held event's id. Holds due since before @oldest are
-- `expired` (release_held skips them: a message a day late is not the message planned); those due
-- before @scan_from were expired by an earlier call.
with

holds as (
    select
        delivery_id,
        release_at,
        planned_at as held_at,
        'plan' as hold_key
    from audiences.deliveries
    where outcome = 'hold' and not dry_run and planned_at >= @scan_from and release_at <= @now
    union all
    select
        delivery_id,
        release_at,
        at as held_at,
        event_id as hold_key
    from audiences.delivery_events
    where event = 'held' and at >= @scan_from and release_at <= @now
),

-- the latest hold of each delivery; a later one (held again at its release) supersedes it
latest as (
    select
        delivery_id,
        release_at,
        held_at,
        hold_key
    from holds
    where true
    qualify row_number() over (partition by delivery_id order by held_at desc, hold_key desc) = 1
),

-- anything recorded after the hold ends it: a release, or the delivery went another way (a release
-- at the instant of a hold is the one that hold came from: deliver held the delivery again)
settled as (
    select
        l.delivery_id
    from latest as l
    inner join audiences.delivery_events as e on e.delivery_id = l.delivery_id
    where
        e.at >= @scan_from
        and e.event != 'held'
        and (e.at > l.held_at or (e.at = l.held_at and e.event != 'released'))
),

rows as (
    select
        delivery_id,
        campaign_id,
        run_id,
        site_id,
        customer_id,
        channel
    from audiences.deliveries
    where
        planned_at >= @scan_from
        and delivery_id in (select l.delivery_id from latest as l)
    qualify row_number() over (partition by delivery_id order by planned_at) = 1
)

select
    r.delivery_id,
    r.campaign_id,
    r.run_id,
    r.site_id,
    r.customer_id,
    r.channel,
    l.release_at,
    l.hold_key,
    l.release_at < @oldest as expired
from latest as l
inner join rows as r on r.delivery_id = l.delivery_id
where l.delivery_id not in (select s.delivery_id from settled as s)
order by r.campaign_id, r.run_id, r.delivery_id
