-- refined.identities: remember which customer's profile counts each node, now that profiles are
-- built; profile_scope.sql compares it with customer_id to find the customers a change of identity
-- touched since.
update refined.identities
set profiled_customer_id = customer_id
where profiled_customer_id is null or profiled_customer_id != customer_id
