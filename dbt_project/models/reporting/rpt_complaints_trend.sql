-- Complaints by department and month 投诉趋势, every month including the open one, which is marked
-- partial 未结 and the first month of the HIS history incomplete 不完整 (bi_month_status_complete), so a
-- chart shows them as such: complaints received, closed, still
-- open, per 10,000 visits and the time to close. Figures are fct_complaints_month's own.
with complaints as (
    select * from {{ ref('fct_complaints_month') }}
),

departments as (
    select * from {{ ref('dim_departments') }}
)

select
    complaints.department_month_id,
    complaints.hospital_id,
    departments.hospital_name,
    complaints.department_id,
    departments.department_name,
    complaints.month,
    {{ bi_month_status_complete('complaints.month') }} as month_status,
    complaints.complaints,
    complaints.complaints_closed,
    complaints.complaints_open,
    complaints.complaints_per_10k_visits,
    complaints.median_days_to_close,
    complaints.mean_days_to_close
from complaints
left join departments on complaints.department_id = departments.department_id
