{{ config(materialized='view', schema='intermediate', tags=['scoring']) }}
-- DRG anomaly judgement 病种异常判定: every (department, DRG group, closed month, metric) the rule can
-- judge, with its robust z-score and whether it alerts — the population behind drg_anomaly_alerts and
-- its alert rate. Metrics, unrounded: cost per case 例均费用 = Σ case cost / cases and ALOS 平均住院日 =
-- Σ LOS / cases. A month is judged when it is closed, is not the first month of the insurance history
-- (incomplete: cases discharged before the history began are missing), has at least
-- var drg_anomaly_min_cases cases and at least var drg_anomaly_min_history_months earlier months of its
-- own that pass the same tests (the baseline uses only such months).
--   z = 0.6745 × (value − median) / max(MAD, var drg_anomaly_min_relative_mad × |median|)
-- The floor on the dispersion keeps a short, tight history (a MAD of 0.06 days) from turning a
-- 1% move into z = 8. A month is anomalous when |z| > var drg_anomaly_z_limit; it alerts when the last
-- var drg_anomaly_persistence_months judged months of the group and metric (consecutive) all are.
with groups as (
    select * from {{ ref('fct_drg_group_month') }}
),

history_start as (
    select min(month) as first_month from groups
),

eligible as (
    select groups.*
    from groups
    cross join history_start
    where
        groups.cases >= {{ var('drg_anomaly_min_cases') }}
        and groups.month > history_start.first_month
        and groups.month < date_trunc('month', {{ business_date() }})
),

metrics as (
    select
        department_id,
        drg_code,
        drg_name,
        month,
        cases,
        'cost_per_case_cny' as metric,
        case_cost_cny::numeric / cases as value
    from eligible
    union all
    select
        department_id,
        drg_code,
        drg_name,
        month,
        cases,
        'average_length_of_stay' as metric,
        los_days_total::numeric / cases as value
    from eligible
),

history as (
    select
        current_month.department_id,
        current_month.drg_code,
        current_month.drg_name,
        current_month.month,
        current_month.metric,
        current_month.value,
        current_month.cases,
        count(earlier.value) as history_months,
        percentile_cont(0.5) within group (order by earlier.value)::numeric as history_median,
        array_agg(earlier.value order by earlier.month) as history_values
    from metrics as current_month
    inner join metrics as earlier
        on
            current_month.department_id = earlier.department_id
            and current_month.drg_code = earlier.drg_code
            and current_month.metric = earlier.metric
            and current_month.month > earlier.month
    group by 1, 2, 3, 4, 5, 6, 7
    having count(earlier.value) >= {{ var('drg_anomaly_min_history_months') }}
),

deviations as (
    select
        history.*,
        (
            select percentile_cont(0.5) within group (order by abs(v - history.history_median))
            from unnest(history.history_values) as v
        )::numeric as history_mad
    from history
),

scored as (
    select
        deviations.*,
        greatest(deviations.history_mad, {{ var('drg_anomaly_min_relative_mad') }} * abs(deviations.history_median))
            as dispersion
    from deviations
),

judged as (
    select
        scored.*,
        0.6745 * (scored.value - scored.history_median) / nullif(scored.dispersion, 0) as robust_z,
        coalesce(
            abs(0.6745 * (scored.value - scored.history_median) / nullif(scored.dispersion, 0))
            > {{ var('drg_anomaly_z_limit') }},
            false
        ) as is_anomalous
    from scored
),

persistence as (
    select
        judged.*,
        count(*) filter (where judged.is_anomalous) over recent = {{ var('drg_anomaly_persistence_months') }}
        and min(judged.month) over recent
        = (judged.month - interval '{{ var("drg_anomaly_persistence_months") - 1 }} months')::date
            as is_alert
    from judged
    window recent as (
        partition by department_id, drg_code, metric order by month
        rows between {{ var('drg_anomaly_persistence_months') - 1 }} preceding and current row
    )
)

select
    md5(department_id || '|' || drg_code || '|' || month::text || '|' || metric) as alert_id,
    department_id,
    drg_code,
    drg_name,
    month,
    metric,
    value,
    cases,
    robust_z,
    is_anomalous,
    is_alert,
    jsonb_build_object(
        'cases', cases, 'history_months', history_months, 'history_median', history_median,
        'history_mad', history_mad, 'dispersion', dispersion, 'history_values', history_values,
        'z_limit', {{ var('drg_anomaly_z_limit') }},
        'min_relative_mad', {{ var('drg_anomaly_min_relative_mad') }},
        'min_cases', {{ var('drg_anomaly_min_cases') }},
        'persistence_months', {{ var('drg_anomaly_persistence_months') }}
    ) as evidence
from persistence
