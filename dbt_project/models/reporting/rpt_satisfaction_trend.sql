-- Patient satisfaction by department over closed months 科室满意度趋势, with the department's and
-- hospital's names and the month's complaints and time to close beside it: what the patient service
-- centre's dashboard plots. Figures are fct_satisfaction_month's and fct_complaints_month's own.
with satisfaction as (
    select * from {{ ref('fct_satisfaction_month') }}
    where {{ bi_is_complete_month('month') }}
),

complaints as (
    select * from {{ ref('fct_complaints_month') }}
),

departments as (
    select * from {{ ref('dim_departments') }}
)

select
    satisfaction.department_month_id,
    satisfaction.hospital_id,
    departments.hospital_name,
    satisfaction.department_id,
    departments.department_name,
    departments.department_label,
    satisfaction.month,
    satisfaction.questionnaires,
    satisfaction.answers,
    satisfaction.satisfaction_rate,
    satisfaction.mean_score,
    satisfaction.meets_min_sample,
    satisfaction.satisfaction_rank,
    complaints.complaints,
    complaints.complaints_closed,
    complaints.complaints_per_10k_visits,
    complaints.median_days_to_close
from satisfaction
left join complaints on satisfaction.department_month_id = complaints.department_month_id
left join departments on satisfaction.department_id = departments.department_id
