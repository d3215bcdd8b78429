-- refined.profiles: delete the queued customers left without activity up to run_date (merged into
-- another customer, split up, or their events deleted). A separate statement: a MERGE whose source
-- also carries these rows runs about 50 times slower on DuckDB.
delete from refined.profiles
where customer_id in (
    select q.customer_id
    from refined.profile_queue as q
    left join (
        select distinct i.customer_id
        from refined.identities as i
        inner join refined.node_days as d on d.site_id = i.site_id and d.node = i.node
        where d.event_date <= @run_date
    ) as a on a.customer_id = q.customer_id
    where q.customer_id is not null and a.customer_id is null
)
