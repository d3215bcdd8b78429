-- refined.identities: drop the nodes profile_queue_identities.sql found without activity or edges.
-- Runs before identities.sql, which adds back any queued node that has activity again.
delete from refined.identities
where identity_id in (
    select concat(site_id, '|', node)
    from refined.profile_queue
    where reason = 'identity'
)
