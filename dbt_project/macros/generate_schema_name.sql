{#- Schemas are named exactly as configured (staging, marts_build, …), not prefixed with the
    target schema: the published schemas and the roles that read them depend on stable names. -#}
{#- The documentation site is generated with var `published_schemas` (build schema → published schema,
    hospital_ops.pipeline.PUBLISHED_SCHEMAS, passed by hospital_ops.dbt_runner.generate_docs): its
    manifest and catalog then name the relations BI reads (`marts.rpt_…`, `scoring.…`), with the comments
    publish copied onto them, instead of the build schemas. Builds never set it. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set name = custom_schema_name if custom_schema_name is not none else target.schema -%}
    {{ var('published_schemas', {}).get(name, name) }}
{%- endmacro %}
