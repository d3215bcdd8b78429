-- refined.profile_lists_staging: emptied before a profile build stages lists (a failed build may have
-- left some behind) and again once they are applied.
delete from refined.profile_lists_staging
where true
