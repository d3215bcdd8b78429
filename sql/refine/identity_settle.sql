-- refined.identity_labels: the active components have converged and identities.sql has read them;
-- mark them settled, so the next run resets only what changes by then (a node still active there
-- belongs to a run that failed), and drop the rows of nodes left without used edges.
merge refined.identity_labels as t
using (
    select label_id, linked
    from refined.identity_labels
    where active or changed_round != 0
) as s
on t.label_id = s.label_id
when matched and not s.linked then delete
when matched then update set active = false, changed_round = 0
