-- How many settled cases join a HIS stay 医保结算与HIS匹配情况, per hospital and discharge month: the
-- share that does not join is reported here (and its cases listed in int_insurance__cases), never dropped.
select
    hospital_id,
    discharge_month,
    count(*) as settled_cases,
    count(*) filter (where is_matched) as matched_cases,
    count(*) filter (where not is_matched) as unmatched_cases,
    {{ safe_ratio('count(*) filter (where not is_matched)', 'count(*)') }} as unmatched_share,
    sum(case_cost_cny) filter (where not is_matched) as unmatched_case_cost_cny
from {{ ref('int_insurance__cases') }}
group by hospital_id, discharge_month
