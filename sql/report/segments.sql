-- Each segment's size, entries and exits per day of the window, from the membership spells
-- [entered_on, left_on): a member on a day entered on or before it and had not left by it.
with

days as (
    select day
    from unnest(generate_date_array(@since, @until)) as day
),

spells as (
    select
        segment_id,
        entered_on,
        left_on
    from audiences.segment_member_history
    where entered_on <= @until and (left_on is null or left_on >= @since)
)

select
    s.segment_id,
    d.day,
    countif(s.entered_on <= d.day and (s.left_on is null or s.left_on > d.day)) as size,
    countif(s.entered_on = d.day) as entered,
    countif(s.left_on = d.day) as exited
from spells as s
cross join days as d
group by s.segment_id, d.day
order by s.segment_id, d.day
