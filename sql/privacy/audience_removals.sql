-- privacy.audience_removals: ask for the erased customers' removal from ad-platform audiences,
-- one row per customer and request (parallel arrays); publishing removes them and the row. The
-- row id makes a retried erasure ask once.
merge privacy.audience_removals as t
using (
    select
        concat(@site_id, '|', customer_id, '|', @request_ids[offset(position)]) as removal_id,
        @site_id as site_id,
        customer_id,
        @request_ids[offset(position)] as request_id,
        @requested_at as requested_at
    from unnest(@customer_ids) as customer_id with offset as position
) as s
on t.removal_id = s.removal_id
when not matched then insert (removal_id, site_id, customer_id, request_id, requested_at)
values (s.removal_id, s.site_id, s.customer_id, s.request_id, s.requested_at)
