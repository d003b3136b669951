-- Source freshness 数据源时效: one row per night and source table, as hospital_ops.dbt_runner.check_freshness
-- records dbt source freshness in dq.source_freshness.
select
    business_date,
    source,
    table_name,
    status,
    max_loaded_at,
    checked_at,
    age_seconds,
    warn_after,
    error_after,
    message
from {{ source('quality', 'source_freshness') }}
