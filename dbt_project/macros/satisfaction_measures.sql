{#- Satisfaction measures 满意度指标 over survey answers, defined once for every mart that reports them:
    questionnaires (the sample size 样本量), answers, satisfied answers, satisfaction rate 满意率 =
    satisfied answers / answers, and the mean score 平均分. `alias` is the answers relation's alias
    (columns questionnaire_id, score, is_satisfied_by_rule). -#}
{% macro satisfaction_measures(alias='answers') -%}
    count(distinct {{ alias }}.questionnaire_id) as questionnaires,
    count(*) as answers,
    count(*) filter (where {{ alias }}.is_satisfied_by_rule) as satisfied_answers,
    {{ safe_ratio('count(*) filter (where ' ~ alias ~ '.is_satisfied_by_rule)', 'count(*)') }} as satisfaction_rate,
    avg({{ alias }}.score)::numeric as mean_score
{%- endmacro %}

{#- A component score 0–100 on a straight line from `floor` (0) to `target` (100), clamped: works for
    lower-is-better indicators too (target below floor). Null when the value is null. -#}
{% macro linear_score(value, floor, target) -%}
    (100 * least(1, greatest(0, (({{ value }}) - ({{ floor }})) / nullif(({{ target }}) - ({{ floor }}), 0))))::numeric
{%- endmacro %}
