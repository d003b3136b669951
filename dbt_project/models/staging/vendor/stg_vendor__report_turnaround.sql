-- Report turnaround log 报告周转: specimen received → report issued, against the promise
-- One row per report_id: the current version (see macro latest_version).
with current_version as (
    {{ latest_version(source('vendor', 'report_turnaround'), ['report_id']) }}
)

select
    report_id,
    vendor_id,
    received_at,
    issued_at,
    promised_hours,
    _batch_date as landed_batch_date,
    _source_file as source_file,
    _row_number as source_row_number
from current_version
