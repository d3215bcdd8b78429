-- refined.node_days: clear event_date in [date_from, date_to]; node_days.sql then inserts it anew.
-- Two statements, not one MERGE: DuckDB refuses a MERGE that deletes and re-inserts a primary key,
-- and a MERGE matched on the key scans (and bills) the whole table on BigQuery.
delete from refined.node_days
where event_date between @date_from and @date_to
