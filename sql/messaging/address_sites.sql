-- The latest delivery to @address on @channel planned since @since on each site: where an opt-out
-- that names no delivery of ours (an inbound STOP reply to the sending number) is recorded, and the
-- delivery its `unsubscribed` event is about. The address is the one the gate chose, as the
-- person's provider reports it back (E.164 for SMS).
select
    delivery_id,
    campaign_id,
    run_id,
    site_id,
    customer_id,
    channel
from audiences.deliveries
where channel = @channel and address = @address and planned_at >= @since and not dry_run
qualify row_number() over (partition by site_id order by planned_at desc, delivery_id) = 1
order by site_id
