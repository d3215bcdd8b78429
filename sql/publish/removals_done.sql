-- privacy.audience_removals rows are publishing's to delete once done: for customers whose removal
-- was just sent, when no publication still has a row of theirs to remove.
delete from privacy.audience_removals as r
where
    r.site_id = @site_id
    and r.customer_id in (select c from unnest(@customer_ids) as c)
    and not exists (
        select 1
        from audiences.publication_erasures as e
        where e.site_id = r.site_id and e.customer_id = r.customer_id
    )
    and not exists (
        select 1
        from audiences.publication_ledger as l
        where l.site_id = r.site_id and l.customer_id = r.customer_id and l.removed_at is null
    )
