-- The ledger months that are closed 已月结 on the business date (the close day of the following
-- month has passed): what snp_department_month_ledger_closed keeps versions of, so a late
-- correction after closing becomes a new version, never an edit of what was published.
-- Only published figures are versioned: build-time columns (how far the staging had landed when the
-- month was rebuilt) are left out, so a rebuild that changes no figure makes no new version.
{%- set build_time_columns = ['source_landed_through'] %}
{%- set columns = [] %}
{%- if execute %}
    {%- set columns = adapter.get_columns_in_relation(ref('fct_department_month_ledger'))
                      | map(attribute='name') | reject('in', build_time_columns) | list %}
{%- endif %}
-- the mart's columns, read from the catalog (sqlfluff renders without one, hence AM04)
select {% if columns %}{{ columns | join(', ') }}{% else %}*{% endif %}  -- noqa: AM04
from {{ ref('fct_department_month_ledger') }}
where (month + interval '1 month' + interval '{{ var("month_close_day") - 1 }} days')::date <= {{ business_date() }}
