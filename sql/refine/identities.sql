-- refined.identities: each node whose customer may have changed, resolved to its customer. A node
-- with used edges takes its component's label from identity_labels; any other node is a customer on
-- its own. The customer_id hashes the site with the label: deterministic, and unique across sites.
-- Which nodes: the active labels (components identity_seed.sql reset, and nodes that lost their
-- last used edge), the nodes queued for the next profile build (activity rewritten, including new
-- nodes) and the other ends of their edges (a new key linked by an ignored edge). Every node with
-- activity or an edge when every_node is true: a repair after editing identity_edges by hand.
-- identities_gone.sql has already dropped the nodes left without activity or edges.
merge refined.identities as t
using (
    with

    queued as (
        select distinct site_id, node from refined.profile_queue where node is not null
    ),

    candidates as (
        select site_id, node from refined.identity_labels where active
        union distinct
        select site_id, node from queued
        union distinct
        select e.site_id, e.node_b from refined.identity_edges as e
        inner join queued as q on q.site_id = e.site_id and q.node = e.node_a
        union distinct
        select e.site_id, e.node_a from refined.identity_edges as e
        inner join queued as q on q.site_id = e.site_id and q.node = e.node_b
        union distinct
        select site_id, node from refined.node_days where @every_node
        union distinct
        select site_id, node_a from refined.identity_edges where @every_node
        union distinct
        select site_id, node_b from refined.identity_edges where @every_node
    ),

    -- the candidates that still have activity or an edge
    nodes as (
        select c.site_id, c.node
        from candidates as c
        inner join (select distinct site_id, node from refined.node_days) as d
            on d.site_id = c.site_id and d.node = c.node
        union distinct
        select c.site_id, c.node
        from candidates as c
        inner join refined.identity_edges as e on e.site_id = c.site_id and e.node_a = c.node
        union distinct
        select c.site_id, c.node
        from candidates as c
        inner join refined.identity_edges as e on e.site_id = c.site_id and e.node_b = c.node
    ),

    resolved as (
        select
            n.site_id,
            n.node,
            coalesce(
                l.label,
                concat(
                    case
                        when starts_with(n.node, 'member:') then '1'
                        when starts_with(n.node, 'visitor:') then '2'
                        when starts_with(n.node, 'email:') then '3'
                        else '4'
                    end,
                    n.node
                )
            ) as label
        from nodes as n
        left join refined.identity_labels as l on l.site_id = n.site_id and l.node = n.node
    ),

    final as (
        select
            concat(site_id, '|', node) as identity_id,
            site_id,
            node,
            substr(node, 1, strpos(node, ':') - 1) as id_type,
            substr(node, strpos(node, ':') + 1) as id_value,
            concat('c_', substr(to_hex(md5(concat(site_id, '|', label))), 1, 20)) as customer_id
        from resolved
    )

    -- in id order: new rows fill whole row groups (docs/segmentlets.md)
    select * from final
    order by identity_id
) as s
on t.identity_id = s.identity_id
when matched and t.customer_id != s.customer_id then update set customer_id = s.customer_id
when not matched then insert (identity_id, site_id, node, id_type, id_value, customer_id)
values (s.identity_id, s.site_id, s.node, s.id_type, s.id_value, s.customer_id)
