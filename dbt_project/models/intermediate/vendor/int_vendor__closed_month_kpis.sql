-- The vendor KPI months that are closed 已月结 on the business date (the month ended and the close
-- day of the following month has passed): what the snapshot snp_vendor_month_kpis_closed keeps
-- versions of, so a correction after closing becomes a new version instead of an edit.
-- Only published figures are versioned: the build-time column built_on (which night last rebuilt the
-- month) is left out, so a rebuild that changes no figure makes no new version.
{%- set build_time_columns = ['built_on'] %}
{%- set columns = [] %}
{%- if execute %}
    {%- set columns = adapter.get_columns_in_relation(ref('fct_vendor_month_kpis'))
                      | map(attribute='name') | reject('in', build_time_columns) | list %}
{%- endif %}
-- every column of the mart but built_on, read from the catalog (sqlfluff renders without one, hence AM04)
select {% if columns %}{{ columns | join(', ') }}{% else %}*{% endif %}  -- noqa: AM04
from {{ ref('fct_vendor_month_kpis') }}
where (month + interval '1 month' + interval '{{ var("month_close_day") - 1 }} days')::date <= {{ business_date() }}
