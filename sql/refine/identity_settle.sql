-- refined.identity_labels: the active components have converged; mark them settled, so the next
-- run resets only what changes by then (a node still active there belongs to a run that failed).
update refined.identity_labels
set active = false, changed_round = 0
where active or changed_round != 0
