-- refined.profile_staging: emptied before a profile build stages rows (a failed build may have left
-- some behind) and again once they are swapped in.
delete from refined.profile_staging
where true
