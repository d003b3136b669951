-- Source freshness 数据源时效 by night and source table: how long ago each table last received rows
-- when the night checked it, against its warn_after / error_after (dbt source freshness, recorded in
-- dq.source_freshness by hospital_ops.dbt_runner.check_freshness). A table in error leaves what
-- depends on it out of that night's marts build. Built in the scoring stage: tonight's check is in.
with checks as (
    select * from {{ ref('stg_platform__source_freshness') }}
)

select
    md5(business_date::text || '|' || source || '|' || table_name) as freshness_check_id,
    business_date,
    source,
    {{ source_system_name('source') }} as source_system_name,
    table_name,
    status,
    case status
        when 'pass' then '正常 Fresh'
        when 'warn' then '偏旧（警告） Stale, warning'
        when 'error' then '过期（未重建下游） Stale, dependants not rebuilt'
        else '检查出错 Check failed'
    end as freshness_status,
    case status when 'pass' then 3 when 'warn' then 2 else 1 end as status_order,
    status <> 'pass' as is_stale,
    max_loaded_at,
    (age_seconds / 3600)::numeric as age_hours,
    warn_after,
    error_after,
    message,
    checked_at
from checks
