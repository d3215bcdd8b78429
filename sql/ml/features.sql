-- BigQuery ML path, step 1: the features of every customer in scope, transformed as the
-- scikit-learn path transforms them (shared/discovery/features.py): log1p of money and counts, a
-- `<code>__missing` indicator beside each numeric feature (BigQuery ML imputes the NULL itself),
-- booleans as 0/1, NULL categories as '(missing)' (BigQuery ML one-hot encodes strings). The model
-- reads only the configured columns. Names in braces are slots that only code fills.
create or replace table {features} as
select
    customer_id,
    site_id,
    ln(1 + greatest(cast(recency_days as float64), 0)) as recency_days,
    if(recency_days is null, 1.0, 0.0) as recency_days__missing,
    ln(1 + greatest(cast(odr as float64), 0)) as odr,
    if(odr is null, 1.0, 0.0) as odr__missing,
    ln(1 + greatest(cast(rvn as float64), 0)) as rvn,
    if(rvn is null, 1.0, 0.0) as rvn__missing,
    ln(1 + greatest(cast(avg_rvn as float64), 0)) as avg_rvn,
    if(avg_rvn is null, 1.0, 0.0) as avg_rvn__missing,
    ln(1 + greatest(cast(odr_ltv as float64), 0)) as odr_ltv,
    if(odr_ltv is null, 1.0, 0.0) as odr_ltv__missing,
    ln(1 + greatest(cast(rvn_ltv as float64), 0)) as rvn_ltv,
    if(rvn_ltv is null, 1.0, 0.0) as rvn_ltv__missing,
    ln(1 + greatest(cast(avg_rvn_ltv as float64), 0)) as avg_rvn_ltv,
    if(avg_rvn_ltv is null, 1.0, 0.0) as avg_rvn_ltv__missing,
    ln(1 + greatest(cast(sessions as float64), 0)) as sessions,
    if(sessions is null, 1.0, 0.0) as sessions__missing,
    ln(1 + greatest(cast(page_views as float64), 0)) as page_views,
    if(page_views is null, 1.0, 0.0) as page_views__missing,
    ln(1 + greatest(cast(date_diff(period_end, date(first_seen), day) as float64), 0)) as tenure_days,
    if(date_diff(period_end, date(first_seen), day) is null, 1.0, 0.0) as tenure_days__missing,
    ln(1 + greatest(cast(array_length(pn) as float64), 0)) as products_viewed,
    if(array_length(pn) is null, 1.0, 0.0) as products_viewed__missing,
    ln(1 + greatest(cast(array_length(kw_inner) as float64), 0)) as keywords,
    if(array_length(kw_inner) is null, 1.0, 0.0) as keywords__missing,
    cast(age as float64) as age,
    if(age is null, 1.0, 0.0) as age__missing,
    if(coalesce(is_member, false), 1.0, 0.0) as is_member,
    if(coalesce(has_email, false), 1.0, 0.0) as has_email,
    if(coalesce(has_phone, false), 1.0, 0.0) as has_phone,
    coalesce(sex, '(missing)') as sex,
    coalesce(device, '(missing)') as device,
    coalesce(os, '(missing)') as os,
    coalesce(br, '(missing)') as br,
    coalesce(region, '(missing)') as region,
    coalesce(ref_media_fst, '(missing)') as ref_media_fst,
    coalesce(ref_media_lst, '(missing)') as ref_media_lst
from {profiles}
where
    (cast(@site_id as string) is null or site_id = @site_id)
    and (cast(@active_days as int64) is null or recency_days < @active_days)
