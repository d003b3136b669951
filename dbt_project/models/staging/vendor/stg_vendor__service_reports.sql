-- Monthly service report 月度服务报告 submitted by each vendor as an Excel workbook
-- One row per vendor_id, period: the current version (see macro latest_version).
with current_version as (
    {{ latest_version(source('vendor', 'service_reports'), ['vendor_id', 'period'], tiebreak='revision desc') }}
)

select
    vendor_id,
    period,
    revision,
    submitted_on,
    service_volume,
    complaints_received,
    patients_surveyed,
    patients_satisfied,
    _batch_date as landed_batch_date,
    _source_file as source_file,
    _row_number as source_row_number
from current_version
