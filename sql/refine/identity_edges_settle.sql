-- refined.identity_edges: identity resolution has taken in the pending edges (identity_seed.sql);
-- the next run resolves again only the components of edges that become pending by then.
update refined.identity_edges
set pending = false
where pending
