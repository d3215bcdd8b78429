-- refined.identity_labels: restart identity resolution where the graph changed. Each node with a
-- used edge carries a digest of its neighbours; the components (by their label from the last run)
-- in which a node gained, lost or changed a neighbour, or left the graph, or did not finish
-- resolving, are reset to their nodes' own rank-prefixed keys and marked active, and so are new
-- nodes. identity_propagate.sql then works on the active nodes only; every other component kept
-- its converged label. Any used edge touching an active node joins two active nodes: an old edge
-- lies inside one old component, and a new or changed edge changes both ends' digests.
-- A node left without used edges keeps its row, reset to its own key and active, so identities.sql
-- sees its change of customer; identity_settle.sql then deletes the row.
-- The rank makes a member the smallest key of any component that has one, so a customer_id stays
-- the same while visitors, emails and phones join or leave its component.
merge refined.identity_labels as t
using (
    with

    -- each neighbour once: two sources (identify, login) can link the same pair
    links as (
        select site_id, node_a as node, node_b as neighbour from refined.identity_edges where used
        union distinct
        select site_id, node_b, node_a from refined.identity_edges where used
    ),

    linked_nodes as (
        select
            site_id,
            node,
            concat(
                cast(count(*) as string), ':',
                -- an order-free digest: xor of a 60-bit hash of each neighbour
                cast(bit_xor(cast(concat('0x', substr(to_hex(md5(neighbour)), 1, 15)) as int64)) as string)
            ) as neighbours_key
        from links
        group by site_id, node
    ),

    old as (
        select site_id, node, label, neighbours_key, active
        from refined.identity_labels
    ),

    dirty as (
        select distinct o.site_id, o.label
        from old as o
        left join linked_nodes as n on n.site_id = o.site_id and n.node = o.node
        where
            n.node is null
            or o.neighbours_key is null
            or n.neighbours_key != o.neighbours_key
            or coalesce(o.active, false)
    ),

    final as (
        select
            concat(n.site_id, '|', n.node) as label_id,
            n.site_id,
            n.node,
            concat(
                case
                    when starts_with(n.node, 'member:') then '1'
                    when starts_with(n.node, 'visitor:') then '2'
                    when starts_with(n.node, 'email:') then '3'
                    else '4'
                end,
                n.node
            ) as node_key,
            n.neighbours_key,
            o.node is null or d.label is not null as reset
        from linked_nodes as n
        left join old as o on o.site_id = n.site_id and o.node = n.node
        left join dirty as d on d.site_id = o.site_id and d.label = o.label
    )

    select * from final
) as s
on t.label_id = s.label_id
when matched and s.reset then
    update set label = s.node_key, neighbours_key = s.neighbours_key, changed_round = 0, active = true
when not matched then insert (label_id, site_id, node, node_key, label, neighbours_key, changed_round, active)
values (s.label_id, s.site_id, s.node, s.node_key, s.node_key, s.neighbours_key, 0, true)
when not matched by source then update set label = t.node_key, neighbours_key = null, changed_round = 0, active = true
