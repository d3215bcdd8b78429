-- The gate's answers are a run's scratch: emptied before a run asks the gate and once staging ends.
delete from audiences.publication_gate
where publication_id = @publication_id
