-- refined.profile_queue: every identity node with activity in [date_from, date_to], with the customer
-- it belongs to now. refine.py runs it before the range is rewritten (activity that may vanish, and
-- the customer that counted it) and after (nodes new to the range), so the next profile build
-- rebuilds these customers and nobody else on their account.
insert into refined.profile_queue (entry_id, site_id, node, customer_id, reason, queued_at)
select distinct
    concat('range|', d.site_id, '|', d.node, '|', coalesce(i.customer_id, '')) as entry_id,
    d.site_id,
    d.node,
    i.customer_id,
    'range' as reason,
    current_timestamp() as queued_at
from refined.node_days as d
left join refined.identities as i on i.site_id = d.site_id and i.node = d.node
where d.event_date between @date_from and @date_to
