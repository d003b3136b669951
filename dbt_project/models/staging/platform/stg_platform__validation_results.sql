-- The quality gate's results 质量门禁结果: one row per expectation evaluated, per run, checkpoint and suite,
-- as the gate records them in dq.validation_results (values observed are left there).
select
    run_id,
    business_date,
    checkpoint,
    suite,
    target_table,
    expectation_type,
    column_name,
    kwargs as expectation_kwargs,
    success,
    unexpected_count,
    element_count,
    validated_at
from {{ source('quality', 'validation_results') }}
