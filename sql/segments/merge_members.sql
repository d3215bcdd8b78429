-- The current members of one segment: its open spells, stamped with the run that computed them.
-- Read from the history just merged, so members and history never disagree. As in
-- merge_history.sql, the source is a full join and the MERGE joins on the row id alone. entered_at is
-- written on insert only: a member's entry time stays that of the build that added them, and one who
-- left and came back is inserted again with a new one (campaigns triggered on entry read it).
MERGE audiences.segment_members AS m
USING (
  SELECT
    COALESCE(o.customer_id, c.customer_id) AS customer_id,
    o.site_id,
    c.membership_id,
    o.customer_id IS NOT NULL AS member
  FROM (
    SELECT customer_id, site_id
    FROM audiences.segment_member_history
    WHERE segment_id = @segment_id AND left_on IS NULL
  ) AS o
  FULL OUTER JOIN (
    SELECT membership_id, customer_id
    FROM audiences.segment_members
    WHERE segment_id = @segment_id
  ) AS c
    ON c.customer_id = o.customer_id
) AS s
ON m.membership_id = s.membership_id
WHEN MATCHED AND NOT s.member THEN
  DELETE
WHEN MATCHED THEN
  UPDATE SET site_id = s.site_id, computed_at = @computed_at
WHEN NOT MATCHED THEN
  INSERT (membership_id, segment_id, customer_id, site_id, computed_at, entered_at)
  VALUES (CONCAT(@segment_id, '/', s.customer_id), @segment_id, s.customer_id, s.site_id, @computed_at, @computed_at)
