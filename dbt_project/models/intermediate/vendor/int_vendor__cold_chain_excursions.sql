-- Cold-chain excursions 冷链温度超标事件: each unbroken run of readings outside the allowed range
-- on one device is one event, with its start, end, extreme temperature and number of readings.
with readings as (
    select
        device_id,
        vendor_id,
        reading_at,
        temperature_c,
        temperature_c not between {{ var('cold_chain_min_c') }} and {{ var('cold_chain_max_c') }} as is_out_of_range
    from {{ ref('stg_vendor__cold_chain_readings') }}
),

runs as (
    select
        *,
        row_number() over (partition by device_id order by reading_at)
        - row_number() over (partition by device_id, is_out_of_range order by reading_at) as run_id
    from readings
)

select
    md5(device_id || '|' || min(reading_at)::text) as excursion_id,
    device_id,
    vendor_id,
    min(reading_at) as started_at,
    max(reading_at) as ended_at,
    count(*) as readings,
    max(temperature_c) as max_temperature_c,
    min(temperature_c) as min_temperature_c
from runs
where is_out_of_range
group by device_id, vendor_id, run_id
