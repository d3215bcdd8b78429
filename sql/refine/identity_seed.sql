-- refined.identity_labels: restart identity resolution. Every node with a used edge is labelled
-- with its own rank-prefixed key; nodes that lost their last used edge leave. A MERGE rather than a
-- delete and insert: the labels mostly stay where they were, and DuckDB deletes slowly.
-- The rank makes a member the smallest key of any component that has one, so a customer_id stays
-- the same while visitors, emails and phones join or leave its component.
merge refined.identity_labels as t
using (
    with

    linked_nodes as (
        select site_id, node_a as node from refined.identity_edges where used
        union distinct
        select site_id, node_b from refined.identity_edges where used
    ),

    final as (
        select
            concat(site_id, '|', node) as label_id,
            site_id,
            node,
            concat(
                case
                    when starts_with(node, 'member:') then '1'
                    when starts_with(node, 'visitor:') then '2'
                    when starts_with(node, 'email:') then '3'
                    else '4'
                end,
                node
            ) as node_key
        from linked_nodes
    )

    select * from final
) as s
on t.label_id = s.label_id
when matched then update set label = s.node_key, changed_round = 0
when not matched then insert (label_id, site_id, node, node_key, label, changed_round)
values (s.label_id, s.site_id, s.node, s.node_key, s.node_key, 0)
when not matched by source then delete
