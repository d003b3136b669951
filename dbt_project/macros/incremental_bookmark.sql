{#- The bookmark of an incremental model 增量书签: max(`column`) over the stored table ({{ this }}), e.g.
    the business date of the night that last built it; `-infinity` when nothing is stored or the stored
    table predates the column (the first night after the model became incremental then rebuilds
    everything, instead of failing on the missing column). Only inside is_incremental(). -#}
{% macro incremental_bookmark(column, type='date') -%}
    {%- set stored = adapter.get_columns_in_relation(this) | map(attribute='name') | list if execute else [] -%}
    {%- if column in stored -%}
    (select coalesce(max(bookmarked.{{ column }}), '-infinity'::{{ type }}) from {{ this }} as bookmarked)
    {%- else -%}
    '-infinity'::{{ type }}
    {%- endif -%}
{%- endmacro %}
