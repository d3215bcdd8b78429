-- refined.profiles, step 1 of 3: a row for each staged customer (profile_lists.sql) without a profile
-- yet, with its lists; profiles.sql then fills in the other columns. Ordered so that DuckDB fills
-- whole row groups first: a partial row group ahead of full ones is merged forward at the next
-- checkpoint after any append, rewriting the whole table (docs/segmentlets.md).
insert into refined.profiles (
    customer_id, site_id, visitor_ids, ad, cc, kw_inner, kw_outer, pn_odr, pn, lists_key, computed_at
)
select
    s.customer_id,
    s.site_id,
    s.visitor_ids,
    s.ad,
    s.cc,
    s.kw_inner,
    s.kw_outer,
    s.pn_odr,
    s.pn,
    s.lists_key,
    @now as computed_at
from refined.profile_lists_staging as s
left join refined.profiles as p on p.customer_id = s.customer_id
where p.customer_id is null
order by s.customer_id
