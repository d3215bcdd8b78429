-- privacy.audience_removals: ask for the erased customers' removal from ad-platform audiences, one
-- row per customer and request; publishing removes them and the row. Each entry is
-- 'customer_id|request_id' (customer ids hold no '|'). The row id makes a retried erasure ask once.
merge privacy.audience_removals as t
using (
    with

    entries as (
        select
            split(entry, '|')[offset(0)] as customer_id,
            regexp_extract(entry, r'^[^|]*\|(.*)$') as request_id
        from unnest(@entries) as entry
    ),

    final as (
        select
            concat(@site_id, '|', customer_id, '|', request_id) as removal_id,
            @site_id as site_id,
            customer_id,
            request_id,
            @requested_at as requested_at
        from entries
    )

    select * from final
) as s
on t.removal_id = s.removal_id
when not matched then insert (removal_id, site_id, customer_id, request_id, requested_at)
values (s.removal_id, s.site_id, s.customer_id, s.request_id, s.requested_at)
