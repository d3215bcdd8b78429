-- refined.profiles: the rebuilt rows (profile_staging) in place of the ones profile_swap_out.sql
-- deleted, in customer order so that DuckDB fills whole row groups (docs/segmentlets.md).
insert into refined.profiles (
    customer_id, site_id, member_id, visitor_ids, email, phone, birth_year, sex, age, device, os, br, region,
    ref_media_fst, ref_media_lst, ad, cc, kw_inner, kw_outer, pn_odr, pn, rvn, odr, avg_rvn, rvn_ltv, odr_ltv,
    avg_rvn_ltv, rfm, cluster_id, recency_days, sessions, page_views, is_member, has_email, has_phone, rfm_cell,
    r_score, f_score, m_score, first_seen, last_seen, period_start, period_end, computed_at, lists_key
)
select
    customer_id, site_id, member_id, visitor_ids, email, phone, birth_year, sex, age, device, os, br, region,
    ref_media_fst, ref_media_lst, ad, cc, kw_inner, kw_outer, pn_odr, pn, rvn, odr, avg_rvn, rvn_ltv, odr_ltv,
    avg_rvn_ltv, rfm, cluster_id, recency_days, sessions, page_views, is_member, has_email, has_phone, rfm_cell,
    r_score, f_score, m_score, first_seen, last_seen, period_start, period_end, computed_at, lists_key
from refined.profile_staging
order by customer_id
