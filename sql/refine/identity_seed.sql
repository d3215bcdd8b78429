-- refined.identity_labels: restart identity resolution where the graph changed. The components
-- (by their label from the last run) that hold an end of a pending edge (new, or its used flag
-- changed: identity_edges.sql, identity_guard.sql), or that a failed run left active, are reset to
-- their nodes' own rank-prefixed keys and marked active, and so are the linked nodes without a
-- label yet. identity_propagate.sql then works on the active nodes only; every other component
-- kept its converged label. Any used edge touching an active node joins two active nodes: an old
-- edge lies inside one old component, and a pending edge has both ends reset. A node that lost its
-- last used edge is reset to its own key with linked false, so identities.sql sees its change of
-- customer; identity_settle.sql then deletes its row. With every_node, every component is reset:
-- a repair after deleting or editing edges by hand, which leaves nothing pending.
-- The rank makes a member the smallest key of any component that has one, so a customer_id stays
-- the same while visitors, emails and phones join or leave its component.
merge refined.identity_labels as t
using (
    with

    touched as (
        select site_id, node_a as node from refined.identity_edges where pending or @every_node
        union distinct
        select site_id, node_b from refined.identity_edges where pending or @every_node
    ),

    -- the touched nodes that still have a used edge
    linked as (
        select e.site_id, e.node_a as node
        from refined.identity_edges as e
        inner join touched as x on x.site_id = e.site_id and x.node = e.node_a
        where e.used
        union distinct
        select e.site_id, e.node_b
        from refined.identity_edges as e
        inner join touched as x on x.site_id = e.site_id and x.node = e.node_b
        where e.used
    ),

    dirty as (
        select l.site_id, l.label
        from refined.identity_labels as l
        inner join touched as x on x.site_id = l.site_id and x.node = l.node
        union distinct
        select site_id, label
        from refined.identity_labels
        where active or @every_node
    ),

    final as (
        -- every node of a reset component; one untouched by pending edges keeps its used edges (in a
        -- repair every node with an edge is touched, so an untouched one has none left)
        select
            l.label_id,
            l.site_id,
            l.node,
            l.node_key,
            (x.node is null and not @every_node) or k.node is not null as linked
        from refined.identity_labels as l
        inner join dirty as d on d.site_id = l.site_id and d.label = l.label
        left join touched as x on x.site_id = l.site_id and x.node = l.node
        left join linked as k on k.site_id = l.site_id and k.node = l.node

        union all

        -- linked nodes without a label yet
        select
            concat(k.site_id, '|', k.node),
            k.site_id,
            k.node,
            concat(
                case
                    when starts_with(k.node, 'member:') then '1'
                    when starts_with(k.node, 'visitor:') then '2'
                    when starts_with(k.node, 'email:') then '3'
                    else '4'
                end,
                k.node
            ),
            true
        from linked as k
        left join refined.identity_labels as l on l.site_id = k.site_id and l.node = k.node
        where l.node is null
    )

    select * from final
) as s
on t.label_id = s.label_id
when matched then update set label = t.node_key, linked = s.linked, changed_round = 0, active = true
when not matched then insert (label_id, site_id, node, node_key, label, linked, changed_round, active)
values (s.label_id, s.site_id, s.node, s.node_key, s.node_key, s.linked, 0, true)
