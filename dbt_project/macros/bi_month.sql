{#- Closed months for BI 已结月份: a month is closed once the month-close day (var month_close_day) of the
    following month has passed on the night's business date, the rule the ledgers use
    (int_his__closed_month_ledger). Every rpt_ model decides "closed" through these two macros only, so
    a mart's own completeness flag can replace the rule in one place. -#}
{% macro bi_is_closed_month(month_column) -%}
    (({{ month_column }} + interval '1 month' + interval '{{ var("month_close_day") - 1 }} days')::date
        <= {{ business_date() }})
{%- endmacro %}

{#- 'closed' 已结 or 'partial' 未结（部分） — what a chart that shows the open month prints beside it. -#}
{% macro bi_month_status(month_column) -%}
    case when {{ bi_is_closed_month(month_column) }} then 'closed 已结' else 'partial 未结' end
{%- endmacro %}

{#- Complete months for BI 完整月: closed (bi_is_closed_month) and not the incomplete first month of the
    HIS history (stays admitted before it began and visits are missing), as fct_department_month_kpis
    decides it (is_complete_month, the one place). Every HIS-based trend, comparison and growth rate
    reads its months through this macro: an incomplete month is neither plotted nor the base of a
    change. -#}
{% macro bi_is_complete_month(month_column) -%}
    ({{ bi_is_closed_month(month_column) }}
        and {{ month_column }} in (
            select month from {{ ref('fct_department_month_kpis') }} where is_complete_month))
{%- endmacro %}

{#- A month's status where a chart shows every month: 'closed 已结', 'incomplete 不完整' (closed but the
    first month of the HIS history) or 'partial 未结'. -#}
{% macro bi_month_status_complete(month_column) -%}
    case
        when {{ bi_is_complete_month(month_column) }} then 'closed 已结'
        when {{ bi_is_closed_month(month_column) }} then 'incomplete 不完整'
        else 'partial 未结'
    end
{%- endmacro %}
