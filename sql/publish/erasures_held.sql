-- Which of an erasure's customers have uploaded rows waiting to be removed: only their removal is
-- recorded in privacy.audience_removals (publishing deletes it once the rows are sent).
select distinct customer_id
from audiences.publication_erasures
where site_id = @site_id and customer_id in (select c from unnest(@customer_ids) as c)
