-- The named RFM groups of each site's latest period: customers, revenue and the typical member.
with

latest as (
    select
        site_id,
        max(period_end) as period_end
    from refined.rfm
    group by site_id
)

select
    r.rfm_group,
    count(*) as customers,
    sum(r.monetary) as monetary,
    avg(r.recency_days) as recency_days,
    avg(r.frequency) as frequency,
    min(r.period_start) as period_start,
    max(r.period_end) as period_end
from refined.rfm as r
inner join latest as l on l.site_id = r.site_id and l.period_end = r.period_end
group by r.rfm_group
order by customers desc, r.rfm_group
