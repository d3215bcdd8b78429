-- refined.identity_labels: one round (round_number) of label propagation. Each node takes the
-- smallest label among its neighbours' and its label's own label (pointer jumping, which halves
-- the distance to the component's smallest key each round). refine.py repeats the round until
-- identity_changes.sql counts no change: then every node holds its component's smallest key.
merge refined.identity_labels as t
using (
    with

    links as (
        select site_id, node_a as node, node_b as neighbour from refined.identity_edges where used
        union all
        select site_id, node_b, node_a from refined.identity_edges where used
    ),

    offers as (
        select l.site_id, l.node, n.label
        from links as l
        inner join refined.identity_labels as n on n.site_id = l.site_id and n.node = l.neighbour
        union all
        select l.site_id, l.node, j.label
        from refined.identity_labels as l
        inner join refined.identity_labels as j on j.site_id = l.site_id and j.node_key = l.label
    ),

    final as (
        select site_id, node, min(label) as label
        from offers
        group by site_id, node
    )

    select * from final
) as s
on t.site_id = s.site_id and t.node = s.node
when matched and s.label < t.label then update set label = s.label, changed_round = @round_number
