-- refined.profile_queue: the customers this profile build rewrites (reason scope), from what changed
-- since the last build. profile_lists.sql and profiles.sql rebuild the queued customers from all
-- their history, and profile_refresh.sql moves everyone else's date-relative columns to run_date,
-- so the result equals a rebuild of every profile at a cost that follows the change.
insert into refined.profile_queue (entry_id, site_id, node, customer_id, reason, queued_at)
with

-- the period the profiles describe now; empty on the first build, when everything is queued anyway
built as (
    select min(period_start) as period_start, max(period_end) as period_end
    from refined.profiles
),

changed as (
    -- the current customer of each node whose activity was rewritten
    select i.site_id, i.customer_id
    from refined.profile_queue as q
    inner join refined.identities as i on i.site_id = q.site_id and i.node = q.node
    union all
    -- both customers of a node that changed customer (or is new) since the last build
    select site_id, customer_id
    from refined.identities
    where profiled_customer_id is null or profiled_customer_id != customer_id
    union all
    select site_id, profiled_customer_id
    from refined.identities
    where profiled_customer_id != customer_id
    union all
    -- activity on the days entering or leaving the period (either end, either direction)
    select i.site_id, i.customer_id
    from refined.node_days as d
    cross join built as b
    inner join refined.identities as i on i.site_id = d.site_id and i.node = d.node
    where
        (d.event_date >= least(b.period_start, @period_start) and d.event_date < greatest(b.period_start, @period_start))
        or (d.event_date > least(b.period_end, @run_date) and d.event_date <= greatest(b.period_end, @run_date))
    union all
    -- RFM scores that differ from the profile's, including customers entering or leaving RFM
    select r.site_id, r.customer_id
    from refined.rfm as r
    left join refined.profiles as p on p.customer_id = r.customer_id
    where p.rfm_cell is null or p.rfm_cell != r.rfm_cell or p.rfm != r.rfm_group
    union all
    select p.site_id, p.customer_id
    from refined.profiles as p
    left join refined.rfm as r on r.customer_id = p.customer_id
    where p.rfm_cell is not null and r.customer_id is null
    union all
    -- lists cut at another length than list_limit
    select site_id, customer_id
    from refined.profiles
    where not starts_with(coalesce(lists_key, ''), concat(cast(@list_limit as string), ':'))
),

final as (
    select distinct
        concat('scope|', site_id, '||', customer_id) as entry_id,
        site_id,
        cast(null as string) as node,
        customer_id,
        'scope' as reason,
        current_timestamp() as queued_at
    from changed
)

select * from final
