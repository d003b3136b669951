-- CHS-DRG group catalogue 分组方案 with relative weights, one file per version (year)
-- One row per catalogue_version, drg_code: the latest delivery (a re-sent file replaces its rows).
with current_version as (
    {{ latest_version(source('insurance', 'drg_catalogue'), ['catalogue_version', 'drg_code']) }}
)

select
    catalogue_version,
    effective_year,
    drg_code,
    drg_name,
    mdc,
    adrg,
    relative_weight,
    base_rate_cny,
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
