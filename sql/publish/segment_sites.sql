-- The sites a segment's members belong to: the consent gate runs per site.
select distinct site_id
from audiences.segment_members
where segment_id = @segment_id
order by site_id
