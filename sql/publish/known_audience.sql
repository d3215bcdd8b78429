-- The audience a publication created earlier, for a publication still configured with "create":
-- a retry must not create a second one.
select audience_id
from (
    select audience_id, added_at as at from audiences.publication_ledger where publication_id = @publication_id
    union all
    select audience_id, sent_at as at from audiences.publish_log where publication_id = @publication_id
)
order by at desc
limit 1
