-- Lab quality-control runs 室内质控: measured vs expected value of control samples
-- One row per qc_run_id: the current version (see macro latest_version).
with current_version as (
    {{ latest_version(source('vendor', 'lab_qc_results'), ['qc_run_id']) }}
)

select
    qc_run_id,
    vendor_id,
    run_at,
    analyte,
    expected_value,
    measured_value,
    allowed_deviation_pct,
    _batch_date as landed_batch_date,
    _source_file as source_file,
    _row_number as source_row_number
from current_version
