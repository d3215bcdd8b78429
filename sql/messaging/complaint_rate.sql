-- A site's e-mail complaint rate over the window (from the since parameter): deliveries with a
-- `complained` event against deliveries `sent` in it (copies and repeated reports count once),
-- the ratio mailbox providers hold a sender to (Gmail: below 0.1 %, never reaching 0.3 %).
select
    count(distinct if(event = 'sent', delivery_id, null)) as sent,
    count(distinct if(event = 'complained', delivery_id, null)) as complaints
from audiences.delivery_events
where site_id = @site_id and channel = 'email' and event in ('sent', 'complained') and at >= @since
