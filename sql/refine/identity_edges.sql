-- refined.identity_edges: add the links the events of [date_from, date_to] show, widening first/last
-- seen of links already known. Minimum and maximum make a repeated or overlapping run harmless.
-- A new link is pending: identity_seed.sql resolves its ends' components again.
-- Links: a visitor and the member logged in on the same event; the node an event counts for and
-- each contact key on it (identify, CRM record, imported order).
merge refined.identity_edges as t
using (
    with

    linked as (
        select *
        from refined.events
        where event_date between @date_from and @date_to and node is not null
    ),

    pairs as (
        select
            site_id,
            concat('visitor:', visitor_id) as left_node,
            node as right_node,
            if(event_type = 'identify', 'identify', 'login') as source,
            event_ts
        from linked
        where visitor_id is not null and member_id is not null

        union all

        select
            site_id,
            node,
            concat('email:', email),
            case when event_type = 'conv' then 'order' when source = 'import' then 'crm' else 'identify' end,
            event_ts
        from linked
        where email is not null

        union all

        select
            site_id,
            node,
            concat('phone:', phone),
            case when event_type = 'conv' then 'order' when source = 'import' then 'crm' else 'identify' end,
            event_ts
        from linked
        where phone is not null
    ),

    ordered as (
        select
            site_id,
            least(left_node, right_node) as node_a,
            greatest(left_node, right_node) as node_b,
            source,
            event_ts
        from pairs
        where left_node != right_node
    ),

    final as (
        select
            concat(site_id, '|', node_a, '|', node_b, '|', source) as edge_id,
            site_id,
            node_a,
            node_b,
            source,
            min(event_ts) as first_seen,
            max(event_ts) as last_seen
        from ordered
        group by site_id, node_a, node_b, source
    )

    select * from final
) as s
on t.edge_id = s.edge_id
when matched then update set
    first_seen = least(t.first_seen, s.first_seen), last_seen = greatest(t.last_seen, s.last_seen)
when not matched then insert (
    edge_id, site_id, node_a, node_b, source, first_seen, last_seen, used, ignored_reason, pending
)
values (s.edge_id, s.site_id, s.node_a, s.node_b, s.source, s.first_seen, s.last_seen, true, null, true)
