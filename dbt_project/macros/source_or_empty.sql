{% macro source_or_empty(source_name, table_name) %}
    {#- A source the pipeline creates only on its first use (dq.validation_results by the quality gate,
        audit.publications by publish, both after the night's dbt build), or, while it does not exist
        yet, an empty set with the columns and types its sources entry declares: a new warehouse's
        first build then succeeds and its reporting models are empty rather than missing. Nothing in
        dbt itself builds a model on a relation that may not exist yet, hence this macro. -#}
    {%- set relation = source(source_name, table_name) -%}
    {%- if not execute -%}
        {{ return(relation) }}
    {%- endif -%}
    {#- asked of the catalog, not of dbt's relation cache: the cache did not list audit's tables (a schema
        another role owns), so the auditors' models came out empty though their tables had rows -#}
    {%- set found = run_query("select to_regclass('" ~ adapter.quote(relation.schema) ~ "."
                              ~ adapter.quote(relation.identifier) ~ "') is not null") -%}
    {%- if found.columns[0].values()[0] -%}
        {{ return(relation) }}
    {%- endif -%}
    {%- set node = graph.sources.values() | selectattr('source_name', 'equalto', source_name)
                   | selectattr('name', 'equalto', table_name) | first -%}
    {%- set columns = [] -%}
    {%- for column in node.columns.values() -%}
        {%- do columns.append('null::' ~ column.data_type ~ ' as ' ~ adapter.quote(column.name)) -%}
    {%- endfor -%}
    {{ return('(select ' ~ columns | join(', ') ~ ' where false) as empty_' ~ table_name.lstrip('_')) }}
{% endmacro %}

{% macro source_system_name(column) %}
    {#- A source system's code → its Chinese and English name, where a data-team chart shows it. -#}
    case {{ column }}
        when 'his' then '医院信息系统 HIS'
        when 'his_fhir' then '医院信息系统（FHIR） HIS via FHIR'
        when 'insurance' then '医保结算 Insurance settlements'
        when 'survey' then '满意度调查 Satisfaction surveys'
        when 'referral' then '转诊渠道 Referral channels'
        when 'vendor' then '第三方服务商 Vendors'
        else {{ column }}
    end
{% endmacro %}
