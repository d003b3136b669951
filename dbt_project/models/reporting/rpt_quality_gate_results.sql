-- The quality gate's results by night and suite 质量门禁结果: expectations evaluated and failed per run,
-- checkpoint and suite, from dq.validation_results. Built in the scoring stage, after tonight's gate; a
-- night the gate stops publishes nothing, so its failures show with the next night that publishes.
with results as (
    select * from {{ ref('stg_platform__validation_results') }}
)

select
    md5(run_id || '|' || checkpoint || '|' || suite) as gate_result_id,
    business_date,
    run_id,
    checkpoint,
    suite,
    min(target_table) as target_table,
    count(*) as expectations_evaluated,
    count(*) filter (where not success) as expectations_failed,
    coalesce(sum(unexpected_count) filter (where not success), 0)::bigint as unexpected_rows,
    bool_and(success) as suite_passed,
    case when bool_and(success) then '通过 Passed' else '未通过 Failed' end as suite_result,
    max(validated_at) as validated_at
from results
group by business_date, run_id, checkpoint, suite
