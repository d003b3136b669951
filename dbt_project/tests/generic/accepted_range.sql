{#- Values lie within [min_value, max_value] (nulls pass). Written here rather than taken from
    dbt_utils/dbt_expectations because dbt's package hub is not reachable from the machines this
    project must build on; the semantics match dbt_utils.accepted_range. -#}
{% test accepted_range(model, column_name, min_value=none, max_value=none) %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null
  and (
    {% if min_value is not none %}{{ column_name }} < {{ min_value }}{% else %}false{% endif %}
    or {% if max_value is not none %}{{ column_name }} > {{ max_value }}{% else %}false{% endif %}
  )
{% endtest %}
