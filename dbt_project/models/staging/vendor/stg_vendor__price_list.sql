-- Contracted unit prices 服务价格 against public-hospital reference prices (full export)
-- One row per vendor_id, item_code, effective_from: the current version (see macro latest_version).
with current_version as (
    {{ latest_version(source('vendor', 'price_list'), ['vendor_id', 'item_code', 'effective_from']) }}
)

select
    vendor_id,
    item_code,
    item_name,
    unit_price_cny,
    reference_price_cny,
    effective_from,
    _batch_date as landed_batch_date,
    _source_file as source_file,
    _row_number as source_row_number
from current_version
