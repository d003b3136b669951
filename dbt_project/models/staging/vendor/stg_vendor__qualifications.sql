-- Qualifications and certificates 资质证书 with expiry (full export)
-- One row per certificate_no: the current version (see macro latest_version).
with current_version as (
    {{ latest_version(source('vendor', 'qualifications'), ['certificate_no']) }}
)

select
    certificate_no,
    vendor_id,
    certificate_type,
    issued_on,
    expires_on,
    _batch_date as landed_batch_date,
    _source_file as source_file,
    _row_number as source_row_number
from current_version
