-- The sites identity resolution knows: where a request that names no site is looked for.
select distinct site_id from refined.identities
