-- The audience a publication created earlier, for a publication still configured with "create":
-- a retry must not create a second one.
with

used as (
    select audience_id, added_at as used_at
    from audiences.publication_ledger
    where publication_id = @publication_id
    union all
    select audience_id, sent_at as used_at
    from audiences.publish_log
    where publication_id = @publication_id
)

select audience_id
from used
order by used_at desc
limit 1
