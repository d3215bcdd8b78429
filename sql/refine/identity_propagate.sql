-- refined.identity_labels: one round (round_number) of label propagation over the active nodes
-- (identity_seed.sql). Each takes the smallest label among its neighbours' and its label's own
-- label (pointer jumping, which halves the distance to the component's smallest key each round).
-- refine.py repeats the round until identity_changes.sql counts no change: then every active node
-- holds its component's smallest key, and identity_settle.sql marks them settled.
merge refined.identity_labels as t
using (
    with

    active as (
        select site_id, node, label
        from refined.identity_labels
        where active
    ),

    links as (
        select e.site_id, e.node_a as node, e.node_b as neighbour
        from refined.identity_edges as e
        inner join active as a on a.site_id = e.site_id and a.node = e.node_a
        where e.used
        union all
        select e.site_id, e.node_b, e.node_a
        from refined.identity_edges as e
        inner join active as a on a.site_id = e.site_id and a.node = e.node_b
        where e.used
    ),

    offers as (
        select l.site_id, l.node, n.label
        from links as l
        inner join refined.identity_labels as n on n.site_id = l.site_id and n.node = l.neighbour
        union all
        select a.site_id, a.node, j.label
        from active as a
        inner join refined.identity_labels as j on j.site_id = a.site_id and j.node_key = a.label
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
