-- How many customers the profile build rebuilds (or deletes): recorded as profiles_rebuilt in the run.
select count(distinct customer_id) as customers
from refined.profile_queue
where customer_id is not null
