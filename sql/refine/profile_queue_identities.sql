-- refined.profile_queue: the nodes that have no activity and no edge left (e.g. after an edge was
-- deleted), with the customer whose profile last counted them (null if none did yet): that profile
-- still lists them. identities_gone.sql then drops these nodes. Changes of customer are found later
-- from profiled_customer_id.
insert into refined.profile_queue (entry_id, site_id, node, customer_id, reason, queued_at)
with

active as (
    select distinct site_id, node from refined.node_days
),

linked as (
    select site_id, node_a as node from refined.identity_edges
    union distinct
    select site_id, node_b from refined.identity_edges
),

final as (
    select
        concat('identity|', i.site_id, '|', i.node, '|', coalesce(i.profiled_customer_id, '')) as entry_id,
        i.site_id,
        i.node,
        i.profiled_customer_id as customer_id,
        'identity' as reason,
        current_timestamp() as queued_at
    from refined.identities as i
    left join active as a on a.site_id = i.site_id and a.node = i.node
    left join linked as l on l.site_id = i.site_id and l.node = i.node
    where a.node is null and l.node is null
)

select * from final
