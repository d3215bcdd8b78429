-- refined.identities: every node with activity or an edge, resolved to its customer. A node with used
-- edges takes its component's label from identity_labels; any other node is a customer on its own.
-- The customer_id hashes the site with the label: deterministic, and unique across sites.
merge refined.identities as t
using (
    with

    -- every node with activity or an edge (profiles read all node_days anyway)
    nodes as (
        select site_id, node from refined.node_days
        union distinct
        select site_id, node_a from refined.identity_edges
        union distinct
        select site_id, node_b from refined.identity_edges
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

    select * from final
) as s
on t.identity_id = s.identity_id
when matched and t.customer_id != s.customer_id then update set customer_id = s.customer_id
when not matched then insert (identity_id, site_id, node, id_type, id_value, customer_id)
values (s.identity_id, s.site_id, s.node, s.id_type, s.id_value, s.customer_id)
when not matched by source then delete
