{#- Schemas are named exactly as configured (staging, marts_build, …), not prefixed with the
    target schema: the published schemas and the roles that read them depend on stable names. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name if custom_schema_name is not none else target.schema }}
{%- endmacro %}
