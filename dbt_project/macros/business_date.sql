{#- The night being processed 业务日期, as a SQL date literal. -#}
{% macro business_date() -%}
    {%- set value = var('business_date') -%}
    {%- if value -%} date '{{ value }}' {%- else -%} current_date {%- endif -%}
{%- endmacro %}
