-- Cold-chain temperature readings 冷链温度 from IoT loggers, several per hour per device
-- One row per device_id, reading_at: the current version (see macro latest_version).
with current_version as (
    {{ latest_version(source('vendor', 'cold_chain_readings'), ['device_id', 'reading_at']) }}
)

select
    device_id,
    vendor_id,
    reading_at,
    temperature_c,
    _batch_date as landed_batch_date,
    _source_file as source_file,
    _row_number as source_row_number
from current_version
