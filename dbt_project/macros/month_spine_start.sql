{#- The first month of a month spine 月份序列起点: the month of `first_day` (an expression, e.g. the
    earliest activity), but never before the `history_start_date` var, so a stray old date that
    reached staging cannot stretch a spine over centuries. NULL (no activity) stays NULL: no months. -#}
{% macro month_spine_start(first_day) -%}
    date_trunc('month', case when ({{ first_day }}) is not null
        then greatest(({{ first_day }})::date, date '{{ var("history_start_date") }}') end)
{%- endmacro %}
