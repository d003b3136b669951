{#- The months a night touched 本次触及的月份, for a mart incremental by month: the months (`month_expressions`,
    SQL over the alias `changed`, e.g. ["changed.visit_month", "changed.previous_visit_month"]) of the
    rows of `relation` that an incremental model upstream wrote since this mart's last build, i.e. whose
    `marker_column` (the business date of the night that wrote them) is after this mart's bookmark
    (macro incremental_bookmark: on a rerun of a night, the day before it).
    Only inside is_incremental(). -#}
{% macro months_touched_since_last_build(relation, marker_column, month_expressions) -%}
    select distinct touched.month
    from {{ relation }} as changed
    cross join lateral (values
        {%- for expression in month_expressions %} (({{ expression }})::date){{ "," if not loop.last }}{% endfor %}
    ) as touched (month)
    where
        changed.{{ marker_column }} > {{ incremental_bookmark('built_on') }}
        and touched.month is not null
{%- endmacro %}
