{#- Whether an incremental model builds on its stored rows 基于已存行增量构建: dbt's is_incremental(), and the
    stored table already has the column that marks how far its last build had landed. A table built
    before the model became incremental lacks that column, so its first incremental night rebuilds every
    month (delete+insert of all of them) instead of failing on the missing column. -#}
{% macro builds_on_stored_rows(mark_column='source_landed_through') -%}
    {%- if not is_incremental() -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list -%}
    {{ return(mark_column in columns) }}
{%- endmacro %}
