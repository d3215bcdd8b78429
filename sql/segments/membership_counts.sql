-- Size of one segment and who entered or left it on the run day.
SELECT
  COUNTIF(left_on IS NULL) AS size,
  COUNTIF(entered_on = @run_date) AS entered,
  COUNTIF(left_on = @run_date) AS exited
FROM audiences.segment_member_history
WHERE segment_id = @segment_id
