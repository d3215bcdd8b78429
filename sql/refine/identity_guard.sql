-- refined.identity_edges: decide which edges identity resolution may merge along.
-- A visitor, email or phone linked to more than max_members_per_key members is a shared key (a
-- family PC, a shop's counter email): none of its edges merges, so it cannot join strangers into
-- one customer. Recomputed over every edge on each run (so a new cap applies at once); an edge whose
-- used flag changes is pending, and identity_seed.sql resolves its ends' components again.
merge refined.identity_edges as t
using (
    with

    member_links as (
        select site_id, node_a as key_node, node_b as member_node
        from refined.identity_edges
        where starts_with(node_b, 'member:') and not starts_with(node_a, 'member:')
        union all
        select site_id, node_b, node_a
        from refined.identity_edges
        where starts_with(node_a, 'member:') and not starts_with(node_b, 'member:')
    ),

    shared_keys as (
        select site_id, key_node, count(distinct member_node) as members
        from member_links
        group by site_id, key_node
        having count(distinct member_node) > @max_members_per_key
    ),

    final as (
        select
            e.edge_id,
            a.key_node is null and b.key_node is null as used,
            case
                when a.key_node is not null or b.key_node is not null then concat(
                    'shared_key: ', coalesce(a.key_node, b.key_node), ' links ',
                    cast(coalesce(a.members, b.members) as string), ' members (cap ',
                    cast(@max_members_per_key as string), ')'
                )
            end as ignored_reason
        from refined.identity_edges as e
        left join shared_keys as a on a.site_id = e.site_id and a.key_node = e.node_a
        left join shared_keys as b on b.site_id = e.site_id and b.key_node = e.node_b
        -- the edges of shared keys, and those not used so far (which may be used now)
        where a.key_node is not null or b.key_node is not null or not coalesce(e.used, false)
    )

    select * from final
) as s
on t.edge_id = s.edge_id
when matched and (t.used is distinct from s.used or t.ignored_reason is distinct from s.ignored_reason) then
    update set used = s.used, ignored_reason = s.ignored_reason, pending = true
