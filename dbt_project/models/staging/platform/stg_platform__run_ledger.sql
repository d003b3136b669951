-- The run ledger 运行台账: one row per ledger row (a night's "started" row and its closing row) with its
-- hash, read from audit.run_ledger, which the migrations create. The payload's fields are typed as the
-- auditors' view audit.runs gives them (sql/audit_objects.sql); that view is created only after a night.
-- (The source is read in a CTE: dbt's --empty build wraps a source in an aliased subquery.)
with ledger as (
    select * from {{ source('audit', 'run_ledger') }}
)

select
    ledger.seq,
    ledger.run_id,
    ledger.business_date,
    ledger.status,
    ledger.recorded_at,
    ledger.payload ->> 'code_version' as code_version,
    (ledger.payload -> 'quality_gate' ->> 'failed')::int as gate_failures,
    jsonb_array_length(ledger.payload -> 'inputs') as input_files,
    (
        select coalesce(sum((inputs.input ->> 'rows_read')::bigint), 0)
        from jsonb_array_elements(ledger.payload -> 'inputs') as inputs (input)
    ) as rows_read,
    ledger.row_hash
from ledger
