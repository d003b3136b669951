-- Contract register 合同台账: SLA targets and term per contract (full export)
-- One row per contract_id: the current version (see macro latest_version).
with current_version as (
    {{ latest_version(source('vendor', 'contracts'), ['contract_id']) }}
)

select
    contract_id,
    vendor_id,
    hospital_id,
    service_type,
    start_date,
    end_date,
    sla_lab_accuracy_min,
    sla_report_on_time_min,
    sla_delivery_on_time_min,
    annual_value_cny,
    _batch_date as landed_batch_date,
    _source_file as source_file,
    _row_number as source_row_number
from current_version
