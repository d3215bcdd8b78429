-- The ids of the delivery a preference-centre link names (one copy), when it is a real delivery of
-- the link's site: the delivery an unsubscribe through that link is an `unsubscribed` event of.
-- Dry-run rows never reached anyone. A few columns of one table, read once per unsubscribe.
select
    delivery_id,
    campaign_id,
    run_id,
    site_id,
    customer_id,
    channel
from audiences.deliveries
where delivery_id = @delivery_id and site_id = @site_id and not dry_run
qualify row_number() over (partition by delivery_id order by planned_at) = 1
