-- How many labels the round numbered round_number lowered: resolution has converged when none.
select count(*) as changed
from refined.identity_labels
where changed_round = @round_number
