-- Cold-chain temperature readings 冷链温度 from IoT loggers, several per hour per device
-- One row per device_id, reading_at: the current version (see macro latest_version).
-- The largest vendor table (a reading every 15 minutes per logger), so it is incremental like
-- stg_his__charges: a night merges only the rows landed since the last build (its high-water mark
-- max(landed_at)); a landed row replaces the stored one unless the stored one is newer by
-- latest_version's order (batch, file, row). The key holds reading_at, so a reading never changes
-- month. Held or released batches make the runner rebuild with --full-refresh (hospital_ops.batches).
{{ config(
    materialized='incremental',
    unique_key=['device_id', 'reading_at'],
    incremental_strategy='delete+insert',
    indexes=[
        {'columns': ['device_id', 'reading_at'], 'unique': True},
        {'columns': ['landed_at']},
        {'columns': ['reading_at']},
    ],
) }}

with current_version as (
    {% if is_incremental() -%}
    {{ latest_version(source('vendor', 'cold_chain_readings'), ['device_id', 'reading_at'],
                      where="_loaded_at > (select coalesce(max(landed_at), '-infinity'::timestamptz) from "
                            ~ this ~ ")") }}
    {%- else -%}
    {{ latest_version(source('vendor', 'cold_chain_readings'), ['device_id', 'reading_at']) }}
    {%- endif %}
),

candidates as (
    select current_version.*
    from current_version
    {% if is_incremental() -%}
    left join {{ this }} as kept
        on current_version.device_id = kept.device_id and current_version.reading_at = kept.reading_at
    where
        kept.device_id is null
        or (current_version._batch_date, current_version._source_file, current_version._row_number)
        >= (kept.landed_batch_date, kept.source_file, kept.source_row_number)
    {%- endif %}
)

select
    device_id,
    vendor_id,
    reading_at,
    temperature_c,
    _batch_date as landed_batch_date,
    _source_file as source_file,
    _row_number as source_row_number,
    _loaded_at as landed_at
from candidates
