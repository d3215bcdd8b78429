-- refined.events: clear event_date in [date_from, date_to]; events.sql then inserts it anew.
-- Two statements, not one MERGE: DuckDB refuses a MERGE that deletes and re-inserts a primary key,
-- and a MERGE matched on the key scans (and bills) the whole table on BigQuery.
delete from refined.events
where event_date between @date_from and @date_to
