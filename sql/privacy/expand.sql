-- Expansion of a privacy batch: every identity linked to the named nodes ('email:kim@example.com'),
-- through the customer identity resolution assigned them (refined.identities), on every site
-- where a node is known. One row per (named node, site, customer, linked identity); the caller
-- keeps the sites each request is about. Unresolved nodes (customer_id '', added by a run still
-- under way) expand to nothing: the request's own identifiers are erased anyway.
with

subjects as (
    select node from unnest(@nodes) as node
),

hits as (
    select distinct
        i.site_id,
        i.node as subject_node,
        i.customer_id
    from refined.identities as i
    where i.node in (select node from subjects) and i.customer_id != ''
),

final as (
    select
        h.subject_node,
        h.site_id,
        h.customer_id,
        i.id_type,
        i.id_value
    from hits as h
    inner join refined.identities as i on i.site_id = h.site_id and i.customer_id = h.customer_id
)

select * from final
