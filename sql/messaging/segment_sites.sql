-- The sites of a segment's members: a campaign asks the consent gate once per site.
select distinct site_id
from audiences.segment_members
where segment_id = @segment_id
order by site_id
