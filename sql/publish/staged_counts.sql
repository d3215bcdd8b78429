-- What a publication has staged: members, those the gate allows, and those with a row to hold.
select
    count(*) as members,
    coalesce(countif(reason = 'eligible'), 0) as eligible,  -- DuckDB counts nothing as NULL
    coalesce(countif(row_hash is not null), 0) as desired
from audiences.publication_staging
where publication_id = @publication_id
