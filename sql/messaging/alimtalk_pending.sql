-- AlimTalk deliveries accepted (a `sent` event) between @since and @until that no result has reached
-- yet (no delivered, failed or canceled event): what the polling safety net asks NHN about. The
-- sent event's provider_id is `<requestId>/<recipientSeq>`: one query per request answers them all.
select
    s.delivery_id,
    any_value(s.provider_id) as provider_id
from audiences.delivery_events as s
where
    s.channel = 'alimtalk'
    and s.event = 'sent'
    and s.provider_id is not null
    and s.at >= @since
    and s.at < @until
    and not exists (
        select 1
        from audiences.delivery_events as r
        where r.at >= @since and r.delivery_id = s.delivery_id and r.event in ('delivered', 'failed', 'canceled')
    )
group by s.delivery_id
order by provider_id
limit @limit
