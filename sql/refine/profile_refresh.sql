-- refined.profiles: move the date-relative columns of every profile to run_date. A customer without
-- new activity only ages: recency grows by the days since the profile's period_end, and age follows
-- the calendar year. Runs after profile_scope.sql, which reads the old period to find the customers
-- whose period sums change; profiles.sql then rewrites those customers whole.
update refined.profiles
set
    recency_days = recency_days + date_diff(@run_date, period_end, day),
    age = if(birth_year <= extract(year from @run_date), extract(year from @run_date) - birth_year, null),
    period_start = @period_start,
    period_end = @run_date,
    computed_at = @now
where true
