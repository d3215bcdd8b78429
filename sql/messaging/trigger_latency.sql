-- From a beacon to the delivery it brought about: the beacon (by event id, in any raw event table) is
-- collected at collected_at; its person resolves through refined.identities by member id, then
-- visitor id; the answer is the first row of the campaign planned for that customer at or
-- after the collection. Null planned_at: not planned (yet).
with

beacon as (
    select event_id, site_id, collected_at, member_id, visitor_id from raw.event where event_id = @event_id
    union all
    select event_id, site_id, collected_at, member_id, visitor_id from raw.conv where event_id = @event_id
    union all
    select event_id, site_id, collected_at, member_id, visitor_id from raw.page where event_id = @event_id
    union all
    select event_id, site_id, collected_at, member_id, visitor_id from raw.land where event_id = @event_id
    union all
    select event_id, site_id, collected_at, member_id, visitor_id from raw.user where event_id = @event_id
),

first_copy as (
    select
        b.site_id,
        b.collected_at,
        coalesce(m.customer_id, v.customer_id) as customer_id
    from beacon as b
    left join refined.identities as m
        on m.site_id = b.site_id and m.id_type = 'member' and m.id_value = b.member_id and m.customer_id != ''
    left join refined.identities as v
        on v.site_id = b.site_id and v.id_type = 'visitor' and v.id_value = b.visitor_id and v.customer_id != ''
    where true
    qualify row_number() over (order by b.collected_at) = 1
)

select
    f.customer_id,
    f.collected_at,
    min(d.planned_at) as planned_at
from first_copy as f
left join audiences.deliveries as d
    on d.customer_id = f.customer_id and d.campaign_id = @campaign_id and d.planned_at >= f.collected_at
group by f.customer_id, f.collected_at
