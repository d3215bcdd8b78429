-- The RFM grid of each site's latest period: customers and revenue per recency x frequency score.
with

latest as (
    select
        site_id,
        max(period_end) as period_end
    from refined.rfm
    group by site_id
)

select
    r.r_score,
    r.f_score,
    count(*) as customers,
    sum(r.monetary) as monetary
from refined.rfm as r
inner join latest as l on l.site_id = r.site_id and l.period_end = r.period_end
group by r.r_score, r.f_score
order by r.r_score, r.f_score
