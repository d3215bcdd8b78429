-- refined.sessions: clear session_date in [day_before, date_to]; sessions.sql then inserts it anew.
-- Two statements, not one MERGE: DuckDB refuses a MERGE that deletes and re-inserts a primary key,
-- and a MERGE matched on the key scans (and bills) the whole table on BigQuery.
delete from refined.sessions
where session_date between @day_before and @date_to
