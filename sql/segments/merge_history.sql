-- Membership history of one segment as of one run day (@run_date, in the segment's time zone).
-- A spell is the half-open day range [entered_on, left_on). The last evaluation of a day wins: a
-- customer who leaves and comes back on the same day keeps the spell, one who enters and leaves on
-- the same day leaves none, so a re-run of the same day with the same profiles changes nothing.
-- The source pairs today's members with the segment's open (or closed-today) spells in a full
-- join, so the MERGE itself joins on spell_id alone: a hash join on DuckDB, one atomic statement
-- on BigQuery. `WHERE TRUE` over refined.profiles is replaced by the compiled segment
-- (shared/tam/compiler.py); every value is a parameter.
MERGE audiences.segment_member_history AS h
USING (
  SELECT
    COALESCE(n.customer_id, o.customer_id) AS customer_id,
    n.site_id,
    o.spell_id,
    n.customer_id IS NOT NULL AS member
  FROM (SELECT customer_id, site_id FROM refined.profiles WHERE TRUE) AS n
  FULL OUTER JOIN (
    SELECT spell_id, customer_id
    FROM audiences.segment_member_history
    WHERE segment_id = @segment_id AND (left_on IS NULL OR left_on = @run_date)
  ) AS o
    ON o.customer_id = n.customer_id
) AS s
ON h.spell_id = s.spell_id
WHEN MATCHED AND s.member AND h.left_on IS NOT NULL THEN
  UPDATE SET left_on = NULL
WHEN MATCHED AND NOT s.member AND h.left_on IS NULL AND h.entered_on = @run_date THEN
  DELETE
WHEN MATCHED AND NOT s.member AND h.left_on IS NULL THEN
  UPDATE SET left_on = @run_date
WHEN NOT MATCHED THEN
  INSERT (spell_id, segment_id, customer_id, site_id, entered_on, left_on)
  VALUES (CONCAT(@segment_id, '/', s.customer_id, '/', @run_day), @segment_id, s.customer_id, s.site_id, @run_date, NULL)
