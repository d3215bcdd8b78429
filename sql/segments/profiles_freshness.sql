-- How recent the profiles behind every segment are: the last refine run that wrote them.
SELECT MAX(computed_at) AS computed_at, COUNT(*) AS profiles
FROM refined.profiles
