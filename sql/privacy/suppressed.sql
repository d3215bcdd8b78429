-- privacy.suppressions: which of the given hashes of one site are on the list (an import checks a
-- chunk of rows before writing it; shared/privacy/suppression.py makes the hashes).
select distinct id_hash
from privacy.suppressions
where site_id = @site_id and id_hash in unnest(@id_hashes)
