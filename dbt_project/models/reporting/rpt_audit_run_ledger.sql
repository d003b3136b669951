-- The run ledger 运行台账: one row per ledger row (a night's "started" row and its closing row), with the
-- row's hash (stg_platform__run_ledger, over audit.run_ledger); `hospital-ops audit verify` checks the chain
-- (docs/auditors.md). The ledger is owned by hospital_ops_ledger and read by the writer.
with runs as (
    select * from {{ ref('stg_platform__run_ledger') }}
)

select
    seq,
    run_id,
    business_date,
    status,
    case status
        when 'started' then '已开始 Started'
        when 'published' then '已发布 Published'
        when 'failed' then '未发布 Failed'
        else status
    end as status_name,
    recorded_at,
    code_version,
    gate_failures,
    input_files,
    rows_read,
    row_hash
from runs
