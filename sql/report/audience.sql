-- The audience funnel as it stands: profiles, customers in at least one segment, customers at least
-- one publication's ad audience holds now.
select
    (select count(*) from refined.profiles) as profiles,
    (select count(distinct customer_id) from audiences.segment_members) as in_segments,
    (
        select count(distinct customer_id)
        from audiences.publication_ledger
        where removed_at is null
    ) as published
