-- Deliveries on one channel that NHN Cloud accepted (a `sent` event) within the window asked for and
-- that no result has reached yet (no delivered, failed or canceled event): what the polling safety
-- nets ask NHN about (AlimTalk, and Korean SMS/LMS). NHN's provider_id is `<requestId>/<recipientSeq>`:
-- one query per request answers them all; Twilio's SIDs (SM..., MM...) have no slash and are left out.
select
    s.delivery_id,
    any_value(s.provider_id) as provider_id
from audiences.delivery_events as s
where
    s.channel = @channel
    and s.event = 'sent'
    and s.provider_id like '%/%'
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
