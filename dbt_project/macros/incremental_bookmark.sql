{#- The bookmark of an incremental model 增量书签: max(`column`) over the stored table ({{ this }}), e.g.
    the business date of the night that last built it, read when the model is compiled and written into
    its SQL as a literal (so the planner estimates the rows after it from the column statistics, as it
    cannot for a subquery's value); `-infinity` when nothing is stored or the stored table predates the
    column (the first night after the model became incremental then rebuilds everything, instead of
    failing on the missing column). Never later than the day before the business date: rows written
    after the bookmark (`> bookmark`) are then a new night's, or, on a rerun of the same night, that
    night's again. Only inside is_incremental(). -#}
{% macro incremental_bookmark(column, type='date') -%}
    {%- set value = none -%}
    {%- if execute -%}
        {%- set stored = adapter.get_columns_in_relation(this) | map(attribute='name') | list -%}
        {%- if column in stored -%}
            {%- set value = run_query('select max(' ~ column ~ ')::text from ' ~ this).columns[0].values()[0] -%}
        {%- endif -%}
    {%- endif -%}
    {%- if value is not none -%}
    least('{{ value }}'::{{ type }}, ({{ business_date() }} - 1)::{{ type }})
    {%- else -%}
    '-infinity'::{{ type }}
    {%- endif -%}
{%- endmacro %}
