{#- Leaves out a raw table's batches held by their verdict 批次裁定: a night's batch the quality gate
    rejected stays out of staging, and so out of everything published, until it is corrected (the night
    rerun and passed) or accepted by a person (`hospital-ops batches accept`); see hospital_ops.batches.
    The one place every staging model's raw rows pass through (via latest_version, or directly). -#}
{% macro not_held(relation) -%}
    _batch_date not in (select batch_date from raw._held_batches where raw_table = '{{ relation.identifier }}')
{%- endmacro %}
