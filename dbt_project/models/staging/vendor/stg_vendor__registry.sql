-- Vendor registry 服务商名录: one row per admitted vendor (full export)
-- One row per vendor_id: the current version (see macro latest_version).
with current_version as (
    {{ latest_version(source('vendor', 'registry'), ['vendor_id']) }}
)

select
    vendor_id,
    vendor_name,
    service_type,
    risk_tier,
    unified_credit_code,
    admitted_on,
    related_party_declared,
    _batch_date as landed_batch_date,
    _source_file as source_file,
    _row_number as source_row_number
from current_version
