-- The customers of a site whose reach the consent gate measures: all of them up to the limit, else the
-- first that many by id (ids are hashes, so an even spread), with the site's total.
select
    customer_id,
    count(*) over () as customers
from refined.profiles
where site_id = @site_id
qualify row_number() over (order by customer_id) <= @limit
