-- Staged rows that no longer hold go: the customer left the segment, the gate answers otherwise
-- (another reason or consent row), or the customer is to be hashed again (publication_changes).
-- What stays is exactly what restaging it would write.
delete from audiences.publication_staging as t
where
    t.publication_id = @publication_id
    and (
        not exists (
            select 1
            from audiences.publication_gate as g
            where
                g.publication_id = @publication_id
                and g.customer_id = t.customer_id
                and g.site_id = t.site_id
                and g.reason = t.reason
                and g.consent_event_id is not distinct from t.consent_event_id
        )
        or exists (
            select 1
            from audiences.publication_changes as c
            where c.publication_id = @publication_id and c.customer_id = t.customer_id
        )
    )
