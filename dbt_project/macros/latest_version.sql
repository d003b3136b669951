{#- The current version of each business key in a raw table: the latest night's batch wins, and
    within a night the latest file and row (full exports and corrections are re-sent whole).
    Staging views use it so everything downstream sees one row per business key. -#}
{% macro latest_version(relation, key_columns, tiebreak=none) -%}
    select distinct on ({{ key_columns | join(', ') }}) *
    from {{ relation }}
    order by {{ key_columns | join(', ') }},
        {% if tiebreak %}{{ tiebreak }}, {% endif %}_batch_date desc, _source_file desc, _row_number desc
{%- endmacro %}
