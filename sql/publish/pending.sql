-- One page of the staged rows still to send, in (customer_id, row_hash) order after the keyset:
-- rows to hold that the ledger does not hold (an add), or, for a replace session (a session id
-- given), rows the session has not sent yet. Held rows before the keyset cannot match: leaving them
-- out keeps a first upload's later pages from joining what earlier pages added.
with

held as (
    select
        customer_id,
        row_hash
    from audiences.publication_ledger
    where
        publication_id = @publication_id
        and removed_at is null
        and (cast(@session_id as int64) is null or session_id = cast(@session_id as int64))
        and customer_id >= @after_customer
),

final as (
    select
        s.site_id,
        s.customer_id,
        s.row_hash,
        s.hashes
    from audiences.publication_staging as s
    left join held as h on h.customer_id = s.customer_id and h.row_hash = s.row_hash
    where
        s.publication_id = @publication_id
        and s.row_hash is not null
        and h.row_hash is null
        and (s.customer_id > @after_customer or (s.customer_id = @after_customer and s.row_hash > @after_hash))
)

select * from final
order by customer_id, row_hash
limit @page_rows
