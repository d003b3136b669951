{#- The combination of columns is unique (as dbt_utils.unique_combination_of_columns; see
    accepted_range.sql for why it lives here). -#}
{% test unique_combination(model, combination_of_columns) %}
select {{ combination_of_columns | join(', ') }}, count(*) as occurrences
from {{ model }}
group by {{ combination_of_columns | join(', ') }}
having count(*) > 1
{% endtest %}
