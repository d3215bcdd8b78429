-- refined.identities: a row for each node of [date_from, date_to] not resolved yet: the nodes with
-- activity on those dates and the other ends of their edges (a contact key, a new device). Its
-- customer_id is empty until identities.sql, later in the same run, resolves the queued nodes and
-- their neighbours; nothing but refinement reads this table. A plain INSERT in id order, so that
-- DuckDB fills whole row groups, which a MERGE's inserts do not (docs/segmentlets.md).
insert into refined.identities (identity_id, site_id, node, id_type, id_value, customer_id)
with

active as (
    select distinct site_id, node
    from refined.node_days
    where event_date between @date_from and @date_to
),

-- each edge seen from both of its ends
ends as (
    select site_id, node_a as node, node_b as other from refined.identity_edges
    union all
    select site_id, node_b, node_a from refined.identity_edges
),

nodes as (
    select site_id, node from active
    union distinct
    select e.site_id, e.other
    from ends as e
    inner join active as a on a.site_id = e.site_id and a.node = e.node
),

final as (
    select
        concat(n.site_id, '|', n.node) as identity_id,
        n.site_id,
        n.node,
        substr(n.node, 1, strpos(n.node, ':') - 1) as id_type,
        substr(n.node, strpos(n.node, ':') + 1) as id_value,
        '' as customer_id
    from nodes as n
    left join refined.identities as i on i.site_id = n.site_id and i.node = n.node
    where i.node is null
)

select * from final
order by identity_id
