-- What a publication has staged: members, those the gate allows, and those with a row to hold.
select
    count(*) as members,
    countif(reason = 'eligible') as eligible,
    countif(row_hash is not null) as desired
from audiences.publication_staging
where publication_id = @publication_id
