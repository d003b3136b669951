{{ config(materialized='incremental', unique_key='alert_id', incremental_strategy='merge',
          on_schema_change='append_new_columns') }}
-- DRG anomaly alerts 病种费用/住院日异常预警: a department's DRG group whose cost per case or ALOS in a
-- closed month departs from its own history beyond a robust z-score limit. z = 0.6745 × (x − median)
-- / MAD over the group's earlier months (at least `drg_anomaly_min_history_months`, each and the
-- month itself with at least `drg_anomaly_min_cases` cases). The alert goes to the department,
-- carries its evidence and keeps its identity across reruns (first_seen_on kept).
with months as (
    select * from {{ ref('fct_drg_group_month') }}
    where cases >= {{ var('drg_anomaly_min_cases') }}
      and month < date_trunc('month', {{ business_date() }})
),

metrics as (
    select department_id, drg_code, drg_name, month, cases, 'cost_per_case_cny' as metric, cost_per_case_cny as value
    from months
    union all
    select department_id, drg_code, drg_name, month, cases, 'average_length_of_stay', average_length_of_stay
    from months
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
        percentile_cont(0.5) within group (order by earlier.value) as history_median,
        array_agg(earlier.value order by earlier.month) as history_values
    from metrics as current_month
    inner join metrics as earlier
        on earlier.department_id = current_month.department_id
        and earlier.drg_code = current_month.drg_code
        and earlier.metric = current_month.metric
        and earlier.month < current_month.month
    group by 1, 2, 3, 4, 5, 6, 7
    having count(earlier.value) >= {{ var('drg_anomaly_min_history_months') }}
),

deviations as (
    select
        history.*,
        (select percentile_cont(0.5) within group (order by abs(v - history.history_median))
         from unnest(history.history_values) as v) as history_mad
    from history
),

triggered as (
    select
        md5(department_id || '|' || drg_code || '|' || month::text || '|' || metric) as alert_id,
        department_id,
        drg_code,
        drg_name,
        month,
        metric,
        value,
        round((0.6745 * (value - history_median) / nullif(history_mad, 0))::numeric, 2) as robust_z,
        jsonb_build_object(
            'cases', cases, 'history_months', history_months, 'history_median', history_median,
            'history_mad', history_mad, 'history_values', history_values,
            'z_limit', {{ var('drg_anomaly_z_limit') }}
        ) as evidence
    from deviations
    where history_mad > 0
      and abs(0.6745 * (value - history_median) / history_mad) > {{ var('drg_anomaly_z_limit') }}
)

select
    triggered.*,
    {% if is_incremental() %}coalesce(previous.first_seen_on, {{ business_date() }}){% else %}{{ business_date() }}{% endif %}
        as first_seen_on,
    {{ business_date() }} as last_seen_on
from triggered
{% if is_incremental() %}
left join {{ this }} as previous on previous.alert_id = triggered.alert_id
{% endif %}
