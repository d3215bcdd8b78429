-- refined.profiles, step 2 of 3: the staged lists (profile_lists.sql) of existing customers. New
-- customers were inserted with theirs by profile_new.sql and already carry the same lists_key.
update refined.profiles as t
set
    visitor_ids = s.visitor_ids, ad = s.ad, cc = s.cc, kw_inner = s.kw_inner, kw_outer = s.kw_outer,
    pn_odr = s.pn_odr, pn = s.pn, lists_key = s.lists_key
from refined.profile_lists_staging as s
where t.customer_id = s.customer_id and (t.lists_key is null or t.lists_key != s.lists_key)
