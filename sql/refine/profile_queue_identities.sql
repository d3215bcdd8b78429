-- refined.profile_queue: the nodes that have no activity and no edge left, with the customer whose
-- profile last counted them (null if none did yet): that profile still lists them.
-- identities_gone.sql then drops these nodes. Refinement deletes no edge, so a node can only lose
-- its last activity when the days it was active on are refined again: the nodes queued from the
-- run's range are checked. Every node is checked with every_node, a repair after deleting edges or
-- events by hand. Changes of customer are found later from profiled_customer_id.
insert into refined.profile_queue (entry_id, site_id, node, customer_id, reason, queued_at)
with

candidates as (
    select i.site_id, i.node, i.profiled_customer_id
    from refined.identities as i
    where
        @every_node
        or i.identity_id in (select concat(q.site_id, '|', q.node) from refined.profile_queue as q where q.node is not null)
),

active as (
    select distinct d.site_id, d.node
    from refined.node_days as d
    inner join candidates as c on c.site_id = d.site_id and c.node = d.node
),

linked as (
    select distinct e.site_id, e.node
    from (
        select site_id, node_a as node from refined.identity_edges
        union all
        select site_id, node_b from refined.identity_edges
    ) as e
    inner join candidates as c on c.site_id = e.site_id and c.node = e.node
),

final as (
    select
        concat('identity|', c.site_id, '|', c.node, '|', coalesce(c.profiled_customer_id, '')) as entry_id,
        c.site_id,
        c.node,
        c.profiled_customer_id as customer_id,
        'identity' as reason,
        current_timestamp() as queued_at
    from candidates as c
    left join active as a on a.site_id = c.site_id and a.node = c.node
    left join linked as l on l.site_id = c.site_id and l.node = c.node
    where a.node is null and l.node is null
)

select * from final
