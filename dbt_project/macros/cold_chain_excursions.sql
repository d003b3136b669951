{#- Cold-chain excursions 冷链温度超标事件 over `readings` (a relation or a parenthesised subquery with an
    alias, columns device_id, vendor_id, reading_at, temperature_c): each unbroken run of readings
    outside the allowed range (vars cold_chain_min_c, cold_chain_max_c) on one device is one event, with
    its start, end, extreme temperature and number of readings. Defined once: the excursions model reads
    every reading, fct_vendor_month_kpis only the readings from which a night's touched months' runs are
    exact (a run's start depends only on the readings after the device's last in-range reading before it). -#}
{% macro cold_chain_excursions(readings) -%}
    select
        md5(runs.device_id || '|' || min(runs.reading_at)::text) as excursion_id,
        runs.device_id,
        runs.vendor_id,
        min(runs.reading_at) as started_at,
        max(runs.reading_at) as ended_at,
        count(*) as readings,
        max(runs.temperature_c) as max_temperature_c,
        min(runs.temperature_c) as min_temperature_c
    from (
        select
            ranged.*,
            row_number() over (partition by ranged.device_id order by ranged.reading_at)
            - row_number() over (
                partition by ranged.device_id, ranged.is_out_of_range order by ranged.reading_at
            ) as run_id
        from (
            select
                device_id,
                vendor_id,
                reading_at,
                temperature_c,
                temperature_c not between {{ var('cold_chain_min_c') }} and {{ var('cold_chain_max_c') }}
                as is_out_of_range
            from {{ readings }}
        ) as ranged
    ) as runs
    where runs.is_out_of_range
    group by runs.device_id, runs.vendor_id, runs.run_id
{%- endmacro %}
