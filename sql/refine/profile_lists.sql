-- refined.profile_lists_staging: the list columns (visitor_ids, ad, cc, kw_inner, kw_outer, pn_odr,
-- pn) of the queued customers (profile_scope.sql) whose list inputs changed, and of new customers.
-- lists_key fingerprints the inputs (each value with when it was last seen in the period, each
-- visitor id, the list limit), so only lists that differ are staged. profile_new.sql inserts the
-- new customers from here, profile_lists_apply.sql updates the others: on DuckDB, updating list
-- columns rewrites whole rows, so rows are written once with their lists where possible.
insert into refined.profile_lists_staging (
    customer_id, site_id, visitor_ids, ad, cc, kw_inner, kw_outer, pn_odr, pn, lists_key
)
with

-- the nodes of the queued customers
identities as (
    select site_id, node, id_type, id_value, customer_id
    from refined.identities
    where customer_id in (select q.customer_id from refined.profile_queue as q)
),

-- the customers profiles.sql keeps: some activity up to the run date
customers as (
    select distinct i.customer_id, i.site_id
    from refined.node_days as d
    inner join identities as i on i.site_id = d.site_id and i.node = d.node
    where d.event_date <= @run_date
),

recent_values as (
    select i.customer_id, t.trait, t.value, max(t.last_ts) as last_ts
    from refined.node_traits as t
    inner join identities as i on i.site_id = t.site_id and i.node = t.node
    where
        t.event_date between @period_start and @run_date
        and t.trait in ('ad', 'cc', 'kw_inner', 'kw_outer', 'pn', 'pn_odr')
    group by i.customer_id, t.trait, t.value
),

inputs as (
    select customer_id, trait, value, last_ts from recent_values
    union all
    select customer_id, 'visitor_ids', id_value, cast(null as timestamp) from identities where id_type = 'visitor'
),

keyed as (
    select
        c.customer_id,
        c.site_id,
        concat(
            cast(@list_limit as string), ':', cast(count(x.trait) as string), ':',
            -- an order-free digest: xor of a 60-bit hash of each input
            cast(coalesce(bit_xor(cast(concat('0x', substr(to_hex(md5(concat(
                x.trait, '|', x.value, '|', coalesce(cast(unix_micros(x.last_ts) as string), '')
            ))), 1, 15)) as int64)), 0) as string)
        ) as lists_key
    from customers as c
    left join inputs as x on x.customer_id = c.customer_id
    group by c.customer_id, c.site_id
),

changed as (
    select k.*
    from keyed as k
    left join refined.profiles as p on p.customer_id = k.customer_id
    where p.lists_key is null or p.lists_key != k.lists_key
),

ranked as (
    select x.customer_id, x.trait, x.value, x.last_ts
    from inputs as x
    inner join changed as c on c.customer_id = x.customer_id
    where x.trait != 'visitor_ids'
    qualify row_number() over (partition by x.customer_id, x.trait order by x.last_ts desc, x.value) <= @list_limit
),

lists as (
    select customer_id, trait, array_agg(value order by last_ts desc, value) as list
    from ranked
    group by customer_id, trait
),

visitors as (
    select x.customer_id, array_agg(x.value order by x.value) as list
    from inputs as x
    inner join changed as c on c.customer_id = x.customer_id
    where x.trait = 'visitor_ids'
    group by x.customer_id
),

final as (
    select
        c.customer_id,
        c.site_id,
        coalesce(v.list, cast([] as array<string>)) as visitor_ids,
        coalesce(ad.list, cast([] as array<string>)) as ad,
        coalesce(cc.list, cast([] as array<string>)) as cc,
        coalesce(kw_inner.list, cast([] as array<string>)) as kw_inner,
        coalesce(kw_outer.list, cast([] as array<string>)) as kw_outer,
        coalesce(pn_odr.list, cast([] as array<string>)) as pn_odr,
        coalesce(pn.list, cast([] as array<string>)) as pn,
        c.lists_key
    from changed as c
    left join visitors as v on v.customer_id = c.customer_id
    left join lists as ad on ad.customer_id = c.customer_id and ad.trait = 'ad'
    left join lists as cc on cc.customer_id = c.customer_id and cc.trait = 'cc'
    left join lists as kw_inner on kw_inner.customer_id = c.customer_id and kw_inner.trait = 'kw_inner'
    left join lists as kw_outer on kw_outer.customer_id = c.customer_id and kw_outer.trait = 'kw_outer'
    left join lists as pn_odr on pn_odr.customer_id = c.customer_id and pn_odr.trait = 'pn_odr'
    left join lists as pn on pn.customer_id = c.customer_id and pn.trait = 'pn'
)

select * from final
