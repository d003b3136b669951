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
