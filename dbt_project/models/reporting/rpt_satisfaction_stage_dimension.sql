-- Satisfaction by service stage and dimension 服务环节与评分维度满意度, closed months, with the
-- department's name. Figures are fct_satisfaction_stage_dimension_month's own.
with stages as (
    select * from {{ ref('fct_satisfaction_stage_dimension_month') }}
    where {{ bi_is_complete_month('month') }}
),

departments as (
    select * from {{ ref('dim_departments') }}
)

select
    stages.stage_dimension_month_id,
    departments.hospital_name,
    stages.department_id,
    departments.department_name,
    stages.month,
    stages.service_stage,
    stages.dimension,
    stages.answers,
    stages.satisfaction_rate,
    stages.mean_score
from stages
left join departments on stages.department_id = departments.department_id
