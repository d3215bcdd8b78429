-- refined.rfm: recency, frequency and monetary quintiles of the customers with at least one order in
-- [period_start, run_date], per site, with the cell and the named group (docs/segmentlets.md).
-- NTILE orders by the value, then by customer_id, so equal values split the same way every run.
merge refined.rfm as t
using (
    with

    orders as (
        select
            i.customer_id,
            i.site_id,
            sum(d.orders) as frequency,
            sum(d.revenue) as monetary,
            max(d.last_order_ts) as last_order_ts,
            max(if(d.orders > 0, d.event_date, null)) as last_order_date
        from refined.node_days as d
        inner join refined.identities as i on i.site_id = d.site_id and i.node = d.node
        -- days without an order or refund add nothing to any sum here
        where d.event_date between @period_start and @run_date and (d.orders > 0 or d.refunds > 0)
        group by i.customer_id, i.site_id
        having sum(d.orders) > 0
    ),

    scored as (
        select
            customer_id,
            site_id,
            date_diff(@run_date, last_order_date, day) as recency_days,
            frequency,
            monetary,
            ntile(5) over (partition by site_id order by last_order_date, customer_id) as r_score,
            ntile(5) over (partition by site_id order by frequency, customer_id) as f_score,
            ntile(5) over (partition by site_id order by monetary, customer_id) as m_score
        from orders
    ),

    grouped as (
        select
            *,
            -- frequency and monetary together: their mean, rounded half up
            cast(floor((f_score + m_score + 1) / 2) as int64) as fm_score
        from scored
    ),

    final as (
        select
            customer_id,
            site_id,
            @period_start as period_start,
            @run_date as period_end,
            recency_days,
            frequency,
            monetary,
            r_score,
            f_score,
            m_score,
            concat(cast(r_score as string), cast(f_score as string), cast(m_score as string)) as rfm_cell,
            case
                when r_score = 5 and fm_score >= 4 then 'Champions'
                when r_score = 4 and fm_score = 5 then 'Champions'
                when r_score >= 3 and fm_score >= 4 then 'Loyal'
                when r_score >= 4 and fm_score >= 2 then 'Potential loyalist'
                when r_score = 5 then 'New'
                when r_score = 4 then 'Promising'
                when r_score = 3 and fm_score >= 2 then 'Need attention'
                when r_score = 3 then 'About to sleep'
                when fm_score = 5 then 'Cannot lose them'
                when fm_score >= 3 then 'At risk'
                when r_score = 2 then 'Hibernating'
                else 'Lost'
            end as rfm_group,
            @now as computed_at
        from grouped
    )

    select * from final
) as s
on t.customer_id = s.customer_id
when matched then update set
    site_id = s.site_id, period_start = s.period_start, period_end = s.period_end, recency_days = s.recency_days,
    frequency = s.frequency, monetary = s.monetary, r_score = s.r_score, f_score = s.f_score, m_score = s.m_score,
    rfm_cell = s.rfm_cell, rfm_group = s.rfm_group, computed_at = s.computed_at
when not matched then insert (
    customer_id, site_id, period_start, period_end, recency_days, frequency, monetary, r_score, f_score, m_score,
    rfm_cell, rfm_group, computed_at
) values (
    s.customer_id, s.site_id, s.period_start, s.period_end, s.recency_days, s.frequency, s.monetary, s.r_score,
    s.f_score, s.m_score, s.rfm_cell, s.rfm_group, s.computed_at
)
when not matched by source then delete
