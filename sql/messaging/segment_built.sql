-- Whether a segment has had members in this warehouse, now or ever: a campaign preview on a segment
-- never built says so instead of showing an empty audience.
select
    exists(select 1 from audiences.segment_members where segment_id = @segment_id)
    or exists(select 1 from audiences.segment_member_history where segment_id = @segment_id) as built
