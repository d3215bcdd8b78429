-- Rows a publication's audience holds, as the ledger says.
select count(*) as held
from audiences.publication_ledger
where publication_id = @publication_id and removed_at is null
