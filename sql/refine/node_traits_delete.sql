-- refined.node_traits: clear event_date in [date_from, date_to]; node_traits.sql then inserts it anew.
-- Two statements, not one MERGE: DuckDB refuses a MERGE that deletes and re-inserts a primary key,
-- and a MERGE matched on the key scans (and bills) the whole table on BigQuery.
delete from refined.node_traits
where event_date between @date_from and @date_to
