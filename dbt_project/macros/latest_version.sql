{#- The current version of each business key in a raw table: the latest night's batch wins, and
    within a night the latest file and row (full exports and corrections are re-sent whole).
    Staging views use it so everything downstream sees one row per business key; `where` narrows the
    raw rows considered (incremental staging: the rows landed since its last build). Batches the quality
    gate rejected are left out until corrected or accepted (macro not_held). -#}
{% macro latest_version(relation, key_columns, tiebreak=none, where=none) -%}
    select distinct on ({{ key_columns | join(', ') }}) *
    from {{ relation }}
    where {{ not_held(relation) }}{% if where %} and ({{ where }}){% endif %}
    order by {{ key_columns | join(', ') }},
        {% if tiebreak %}{{ tiebreak }}, {% endif %}_batch_date desc, _source_file desc, _row_number desc
{%- endmacro %}


{#- Incremental staging of a large fact table 增量事实表: the current version of each key, kept as a table
    that a night updates from the raw rows landed since the table's last build (its high-water mark
    max(landed_at)), not from the whole history.

    A full build is latest_version() over all of raw. Incrementally, the candidates are the latest
    version of each key among the newly landed rows; a candidate replaces the stored row unless the
    stored one is newer by the same order latest_version() uses (`version_column`, then batch, file,
    row). A rerun of a night re-lands its rows (new _loaded_at) and so replaces them with themselves.
    Each written row keeps, in previous_<column>, the stored version's value of `previous_columns`,
    so a model downstream can also recompute the period a correction moved a row out of.
    Rows the candidate query selects carry raw's metadata columns (_batch_date, _source_file,
    _row_number, _loaded_at); the model must store them as landed_batch_date, source_file,
    source_row_number and landed_at. `key_column` is one column, or a list of them for a composite key
    (the model's unique_key is then the same list). A source whose rows carry no version of their own (a
    settlement file re-sent whole) passes version_column=none: the latest delivery wins, as in
    latest_version() without a tiebreak. -#}
{% macro incremental_current_version(relation, key_column, version_column, previous_columns=[]) -%}
    {%- set key_columns = [key_column] if key_column is string else key_column -%}
    {%- set tiebreak = version_column ~ ' desc' if version_column else none -%}
    {%- set version = [version_column] if version_column else [] -%}
    {%- if is_incremental() -%}
    select
        candidates.*
        {%- for column in previous_columns %},
        stored.{{ column }} as previous_{{ column }}
        {%- endfor %}
    from (
        {{ latest_version(relation, key_columns, tiebreak=tiebreak,
                          where="_loaded_at > (select coalesce(max(landed_at), '-infinity'::timestamptz) from "
                                ~ this ~ ")") }}
    ) as candidates
    left join {{ this }} as stored on
        {%- for column in key_columns %} {{ 'and ' if not loop.first }}stored.{{ column }} = candidates.{{ column }}
        {%- endfor %}
    where stored.{{ key_columns[0] }} is null
       or ({% for column in version %}candidates.{{ column }}, {% endfor -%}
           candidates._batch_date, candidates._source_file, candidates._row_number)
          >= ({% for column in version %}stored.{{ column }}, {% endfor -%}
              stored.landed_batch_date, stored.source_file, stored.source_row_number)
    {%- else -%}
    select
        candidates.*
        {%- for column in previous_columns %},
        case when false then candidates.{{ column }} end as previous_{{ column }}
        {%- endfor %}
    from (
        {{ latest_version(relation, key_columns, tiebreak=tiebreak) }}
    ) as candidates
    {%- endif -%}
{%- endmacro %}
