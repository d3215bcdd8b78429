-- One page of the members to hash, in customer_id order after the keyset, with the columns
-- shared/activation/customer_file.py reads each key from (PROFILE_COLUMNS): keyset pages keep each
-- page's work and memory small however many changed. Columns no table holds yet are NULL.
select
    site_id,
    customer_id,
    reason,
    consent_event_id,
    fingerprint,
    email,
    phone,
    given_name,
    family_name,
    sex,
    birth_year,
    cast(null as int64) as birth_month,
    cast(null as int64) as birth_day,
    cast(null as string) as city,
    region,
    cast(null as string) as zip,
    cast(null as string) as country,
    cast(null as string) as madid,
    member_id
from audiences.publication_changes
where publication_id = @publication_id and customer_id > @after
order by customer_id
limit @page_rows
