-- Customers in the discovery scope (same filter as features.sql): picks the engine before reading.
select count(*) as customers
from refined.profiles
where
    (cast(@site_id as string) is null or site_id = @site_id)
    and (cast(@active_days as int64) is null or recency_days < @active_days)
