-- refined.identities: the customer of each node whose customer may have changed. A node with used
-- edges takes its component's label from identity_labels; any other node is a customer on its own.
-- The customer_id hashes the site with the label: deterministic, and unique across sites.
-- Which nodes: the active labels (components identity_seed.sql reset, and nodes that lost their
-- last used edge), the nodes queued for the next profile build (activity rewritten, so every node
-- identities_new.sql added) and the other ends of their edges (a new key linked by an ignored
-- edge). Every node when every_node is true: a repair after editing identity_edges by hand.
-- identities_gone.sql has already dropped the nodes left without activity or edges.
merge refined.identities as t
using (
    with

    queued as (
        select distinct site_id, node from refined.profile_queue where node is not null
    ),

    -- each edge seen from both of its ends
    ends as (
        select site_id, node_a as node, node_b as other from refined.identity_edges
        union all
        select site_id, node_b, node_a from refined.identity_edges
    ),

    candidates as (
        select site_id, node from refined.identity_labels where active
        union distinct
        select site_id, node from queued
        union distinct
        select e.site_id, e.other from ends as e
        inner join queued as q on q.site_id = e.site_id and q.node = e.node
        union distinct
        select site_id, node from refined.node_days where @every_node
        union distinct
        select site_id, node from ends where @every_node
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
        from candidates as n
        left join refined.identity_labels as l on l.site_id = n.site_id and l.node = n.node
    ),

    final as (
        select
            concat(site_id, '|', node) as identity_id,
            concat('c_', substr(to_hex(md5(concat(site_id, '|', label))), 1, 20)) as customer_id
        from resolved
    )

    select * from final
) as s
on t.identity_id = s.identity_id
when matched and t.customer_id != s.customer_id then update set customer_id = s.customer_id
