-- Delivery log 配送记录: promised vs actual delivery time
-- One row per delivery_id: the current version (see macro latest_version).
with current_version as (
    {{ latest_version(source('vendor', 'deliveries'), ['delivery_id']) }}
)

select
    delivery_id,
    vendor_id,
    hospital_id,
    item_category,
    promised_at,
    delivered_at,
    _batch_date as landed_batch_date,
    _source_file as source_file,
    _row_number as source_row_number
from current_version
