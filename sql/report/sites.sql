-- The sites that have profiles: consent coverage is measured per site, as the gate runs.
select
    site_id,
    count(*) as customers
from refined.profiles
group by site_id
order by site_id
