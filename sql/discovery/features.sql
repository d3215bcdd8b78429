-- Discovery features: every catalogue feature (shared/discovery/features.py) of the customers in
-- scope, one row per customer, read as Arrow. Scope: one site or all (@site_id NULL), customers
-- seen within @active_days of their profile date, or all (@active_days NULL). Money as FLOAT64:
-- the job takes log1p of it anyway, and NUMERIC would arrive as Python decimals.
select
    customer_id,
    site_id,
    cast(recency_days as float64) as recency_days,
    cast(odr as float64) as odr,
    cast(rvn as float64) as rvn,
    cast(avg_rvn as float64) as avg_rvn,
    cast(odr_ltv as float64) as odr_ltv,
    cast(rvn_ltv as float64) as rvn_ltv,
    cast(avg_rvn_ltv as float64) as avg_rvn_ltv,
    cast(sessions as float64) as sessions,
    cast(page_views as float64) as page_views,
    cast(date_diff(period_end, date(first_seen), day) as float64) as tenure_days,
    cast(array_length(pn) as float64) as products_viewed,
    cast(array_length(kw_inner) as float64) as keywords,
    cast(age as float64) as age,
    cast(is_member as int64) as is_member,
    cast(has_email as int64) as has_email,
    cast(has_phone as int64) as has_phone,
    sex,
    device,
    os,
    br,
    region,
    ref_media_fst,
    ref_media_lst
from refined.profiles
where
    (cast(@site_id as string) is null or site_id = @site_id)
    and (cast(@active_days as int64) is null or recency_days < @active_days)
order by customer_id
