{#- numerator / denominator at full precision (numeric); null when there is nothing to divide by.
    Marts, rules and further arithmetic keep every digit: a rule must never see a value rounded onto
    the wrong side of its threshold. Only presentation rounds (the BI tools' number formats, the
    terminal summary). docs/definitions.md, "Round once, at presentation". -#}
{% macro safe_ratio(numerator, denominator) -%}
    (({{ numerator }})::numeric / nullif({{ denominator }}, 0))
{%- endmacro %}
