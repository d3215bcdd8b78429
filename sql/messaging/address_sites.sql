-- The sites that planned a delivery to @address on @channel since @since: where an opt-out that
-- names no delivery of ours (an inbound STOP reply to the sending number) is recorded. The address
-- is the one the gate chose, as the person's provider reports it back (E.164 for SMS).
select distinct site_id
from audiences.deliveries
where channel = @channel and address = @address and planned_at >= @since and not dry_run
order by site_id
