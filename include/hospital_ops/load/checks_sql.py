"""The loader's row checks as set-based SQL: one INSERT … SELECT per file instead of Python per cell.

A file's cells are first COPYed, as text, into a landing table (`landing_table_ddl`). One statement
(`file_load_sql`) then converts and checks every row in the database and writes the good rows into
`raw.<source>__<entity>` and the bad ones, with their reason, into `raw._quarantine`.

The SQL mirrors the reference parser `tests/reference_parsing.py` (`convert`) rule for rule and message for message, and
`tests/test_load_checks_sql.py` holds the two side by side on the same cells:

- a cell is stripped of the whitespace Python's `str.strip` removes; blank is NULL;
- a required column must have a value; a personal identifier becomes HMAC-SHA256(key, value)
  truncated to 32 hex digits. The embedded PostgreSQL has no pgcrypto, so the HMAC is built from the
  core `sha256()` as RFC 2104 defines it: sha256((key ⊕ opad) ‖ sha256((key ⊕ ipad) ‖ value)), the
  two padded keys computed once in Python (`hmac_pads`) and read from a session temp table
  (`KEY_TABLE`, see there: never a literal or a parameter in the SQL text);
- text against its allowed values; yes/no values; numbers with thousands separators and ¥, finite,
  whole for int, within the plausibility bounds;
- dates, timestamps and months in the formats `reference_parsing` accepts (the common ISO form is checked
  with a plain pattern; the others go through `pg_temp.hospital_ops_timestamp`, see `SESSION_SQL`);
- references to an entity already landed, only for rows without a conversion error;
- an exact duplicate of an earlier good row of the same file (same converted values).

Row hash and quarantine record are computed as the Python loader computed them: the row hash is the
sha256 of the converted values' text joined by U+001F (NUL for a null), truncated to 32 hex digits.
"""

from __future__ import annotations

import hashlib
import sys
from typing import TYPE_CHECKING

from hospital_ops.load.parsing import SHOWN_CHARS
from hospital_ops.sources.spec import Column, Entity, Source

if TYPE_CHECKING:
    from hospital_ops.config import DateBounds

RAW_SCHEMA = "raw"
TRUE_WORDS = ("y", "yes", "true", "t", "1", "是")  # as reference_parsing._TRUE / _FALSE
FALSE_WORDS = ("n", "no", "false", "f", "0", "否")
# every character Python's str.strip() removes
WHITESPACE = "".join(chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace())
_MONTH = r"^([0-9]{4})[-/.年]([0-9]{1,2})月?$"  # as reference_parsing._MONTH
_BIGINT = (-(2**63), 2**63 - 1)
_PREFIXED = "('x', 'X', 'o', 'O', 'b', 'B')"  # 0x…, 0o…, 0b…

# Functions for the rare cells the fast patterns above do not take; created per session in pg_temp
# (nothing to install, nothing shared between concurrent loads). `hospital_ops_timestamp` accepts
# exactly the formats of reference_parsing.parse_timestamp / parse_date (the two accept the same strings):
# Y-m-d, Y/m/d, Y.m.d, compact Ymd, Y年m月d日, and for - and / a time H:M or H:M:S after whitespace
# (or T for -), with strptime's one-or-two-digit fields and ranges; NULL when none fits.
SESSION_SQL = r"""
create or replace function pg_temp.hospital_ops_timestamp(value text) returns timestamp
language plpgsql immutable strict as $fn$
-- PL/pgSQL, not SQL: PostgreSQL 18 runs a non-inlinable SQL function as a query per call, about 1.3 ms
-- each; PL/pgSQL evaluates these expressions in a few microseconds
declare
    m text[] := regexp_match(value,
        '^([0-9]{4})(?:([-/.])([0-9]{1,2})\2([0-9]{1,2})|([0-9]{2,4})|年([0-9]{1,2})月([0-9]{1,2})日)'
        '(([[:space:]]+|[Tt])([0-9]{1,2}):([0-9]{1,2})(?::([0-9]{1,2}))?)?$');
    iso text;
begin
    if m is null then
        return null;
    elsif m[2] is not null then  -- Y-m-d, Y/m/d or Y.m.d; a time after - (space or T) or / (space)
        if (m[8] is null or m[2] = '-' or (m[2] = '/' and m[9] !~* '^t$'))
           and m[3]::int between 1 and 12 and m[4]::int between 1 and 31
           and (m[8] is null or (m[10]::int < 24 and m[11]::int < 60 and coalesce(m[12], '0')::int < 60)) then
            iso := m[1] || '-' || lpad(m[3], 2, '0') || '-' || lpad(m[4], 2, '0') || ' '
                   || lpad(coalesce(m[10], '0'), 2, '0') || ':' || lpad(coalesce(m[11], '0'), 2, '0') || ':'
                   || lpad(coalesce(m[12], '0'), 2, '0');
        end if;
    elsif m[5] is not null and m[8] is null then  -- compact Ymd: strptime's first split that fits
        if left(m[5], 2) ~ '^(1[0-2]|0[1-9]|[1-9])$' and substr(m[5], 3) ~ '^(3[01]|[12][0-9]|0[1-9]|[1-9])$' then
            iso := m[1] || '-' || lpad(left(m[5], 2), 2, '0') || '-' || lpad(substr(m[5], 3), 2, '0');
        elsif left(m[5], 1) ~ '^(1[0-2]|0[1-9]|[1-9])$' and substr(m[5], 2) ~ '^(3[01]|[12][0-9]|0[1-9]|[1-9])$' then
            iso := m[1] || '-' || lpad(left(m[5], 1), 2, '0') || '-' || lpad(substr(m[5], 2), 2, '0');
        end if;
    elsif m[6] is not null and m[8] is null then  -- Y年m月d日
        iso := m[1] || '-' || lpad(m[6], 2, '0') || '-' || lpad(m[7], 2, '0');
    end if;
    if iso is not null and pg_input_is_valid(iso, 'timestamp') then
        return iso::timestamp;
    end if;
    return null;
end
$fn$;

create or replace function pg_temp.hospital_ops_shown(value text) returns text
language sql immutable strict as $fn$
    -- a value in a message cut to parsing.SHOWN_CHARS characters, as reference_parsing._shown cuts it
    select case when char_length(value) > __SHOWN_CHARS__ then left(value, __SHOWN_CHARS__) || '…' else value end
$fn$;

create or replace function pg_temp.hospital_ops_repr(value text) returns text
language sql immutable strict as $fn$
    -- Python's repr() of a str, as reference_parsing's messages show values
    select case when strpos(value, '''') > 0 and strpos(value, '"') = 0
                then '"' || escaped || '"'
                else '''' || replace(escaped, '''', '\''') || '''' end
    from (select replace(replace(replace(replace(pg_temp.hospital_ops_shown(value), '\', '\\'), E'\n', '\n'),
                             E'\r', '\r'), E'\t', '\t') as escaped) e
$fn$;
"""

SESSION_SQL = SESSION_SQL.replace("__SHOWN_CHARS__", str(SHOWN_CHARS))


def literal(value: object) -> str:
    """A SQL literal for a spec constant (names, bounds, allowed values: never user data)."""
    return "'" + str(value).replace("'", "''") + "'"


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC-SHA256's inner and outer padded keys (RFC 2104), as hmac.new(key, …, sha256) uses them."""
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


# Where the HMAC pads live while a night loads: a temporary table of the loading session, filled by
# COPY … FROM STDIN and dropped at commit. The pads are the key (XOR 0x36 / 0x5C gives it back), so
# they must never be part of a statement's text: a literal, or a parameter psycopg2 interpolates
# client-side (`execute stmt(…)`), shows in pg_stat_activity.query and, when the statement fails or
# is cancelled, in the server log (log_min_error_statement). COPY's data travels in the protocol's
# CopyData messages, which neither shows; its text is only the command below. A server-side
# prepared statement with bound parameters would also keep them out of the text, but psycopg2 has
# no extended-protocol binding, and the table is read once per statement (an InitPlan) either way.
KEY_TABLE = "hospital_ops_hmac_pads"
KEY_TABLE_DDL = f"create temporary table {KEY_TABLE} (inner_pad bytea not null, outer_pad bytea not null) on commit drop"
KEY_TABLE_COPY = f"copy {KEY_TABLE} (inner_pad, outer_pad) from stdin with (format csv)"


def key_table_rows(key: bytes) -> str:
    """The COPY data (one CSV line) that fills KEY_TABLE for `key`."""
    inner, outer = hmac_pads(key)
    return f"\\x{inner.hex()},\\x{outer.hex()}\n"


def _hmac(text_sql: str) -> str:
    return (f"left(encode(sha256((select outer_pad from pg_temp.{KEY_TABLE}) "
            f"|| sha256((select inner_pad from pg_temp.{KEY_TABLE}) "
            f"|| convert_to({text_sql}, 'UTF8'))), 'hex'), 32)")


def _bound(value: float) -> str:
    return str(value)  # as reference_parsing formats it in the message (0, -40, 1000000000.0)


def _stripped(cell: str) -> str:
    """str.strip(), NULL when blank. btrim with the whole whitespace set is the costly part, so it runs
    only when the first or last character is a control character, a space or beyond ASCII."""
    ends = f"ascii({cell}), ascii(right({cell}, 1))"
    return (f"case when least({ends}) > 32 and greatest({ends}) < 133 then {cell} "
            f"else nullif(btrim({cell}, {literal(WHITESPACE)}), '') end")


def landing_table(entity: Entity) -> str:
    return f"_landing__{entity.raw_table}"


def landing_table_ddl(entity: Entity) -> str:
    """A temp table of text cells in spec column order, numbered in arrival order. It holds one file or
    several (a night's small files of one entity, landed by one COPY) and is emptied between them
    without restarting the numbering (TRUNCATE costs milliseconds), so a row's file is found by its
    number among the files' first numbers, and its line is its number less that file's offset (see
    `file_load_sql`)."""
    cells = ", ".join(f"s{i} text" for i in range(len(entity.columns)))
    return (f"create temp table {landing_table(entity)} ({cells}, "
            "_line bigint generated by default as identity) on commit drop")


def _iso_timestamp(cell: str) -> str:
    """The usual ISO shapes, by LIKE (a regular expression costs several times more per cell), with the
    hour and second in strptime's ranges (PostgreSQL also takes 24:00:00 and :60)."""
    return (f"case when {cell} like '____-__-__ __:__:__' and substr({cell}, 12, 2) <= '23' "
            f"and substr({cell}, 18, 2) <= '59' and pg_input_is_valid({cell}, 'timestamp') then {cell}::timestamp "
            f"when {cell} like '____-__-__' and pg_input_is_valid({cell}, 'date') then {cell}::date::timestamp end")


def _number(text: str) -> str:
    """reference_parsing._number's Decimal, or NULL. The text is cleaned of thousands separators and yuan signs;
    PostgreSQL's numeric input also reads 0x/0o/0b integers, which Decimal does not; NaN and the
    infinities both read, and they are refused later as not finite."""
    cleaned = f"replace(replace(replace({text}, ',', ''), '¥', ''), '￥', '')"
    return (f"(select case when pg_input_is_valid(c, 'numeric') and substr(c, 2, 1) not in {_PREFIXED} "
            f"and substr(c, 3, 1) not in {_PREFIXED} then c::numeric end from (select {cleaned} as c) cleaned)")


def _plain_number(cell: str) -> str:
    """The usual case without the subquery: a cell that starts like a number and reads as one."""
    return (f"case when (ascii({cell}) between 48 and 57 or ascii({cell}) in (43, 45, 46)) "
            f"and pg_input_is_valid({cell}, 'numeric') and substr({cell}, 2, 1) not in {_PREFIXED} "
            f"and substr({cell}, 3, 1) not in {_PREFIXED} then {cell}::numeric end")


def _column_sql(column: Column, i: int, pseudonymised: bool = False) -> tuple[str, str, str]:
    """(first, value, error) SQL for spec column i.

    `first` reads the landed cell r{i} and becomes x{i}: the stripped text (text, personal, month
    columns) or the parsed value (dates, numbers, yes/no). Typed cells are first tried as they
    arrived, where PostgreSQL's input functions do the work, and only a cell that fails is stripped
    and tried the slower way. `value` and `error` read x{i} (and r{i}); either may be NULL.
    """
    r, x, name = f"r{i}", f"x{i}", column.name
    t = _stripped(r)  # for the rare branches: blank cells, error messages
    missing = literal(name + ": required value is missing") if column.required else "null"
    prefix = literal(name + ": ")
    repr_t = f"pg_temp.hospital_ops_repr({t})"
    kind = column.type
    if column.pii or kind in ("text", "month"):
        first = t
        repr_t = f"pg_temp.hospital_ops_repr({x})"
    if column.pii and pseudonymised:  # hashed by the extractor (files.pseudonymised_columns): taken as it is
        return first, x, (f"case when {x} is null then {missing} when {x} !~ '^[0-9a-f]{{32}}$' "
                          f"then {literal(column.raw_name + ': not a pseudonym (32 hex digits)')} end")
    if column.pii:
        return first, f"case when {x} is not null then {_hmac(x)} end", f"case when {x} is null then {missing} end"
    if kind == "text":
        if column.allowed is None:
            return first, x, f"case when {x} is null then {missing} end"
        allowed = ", ".join(literal(a) for a in column.allowed)
        message = literal(f" is not one of {', '.join(column.allowed)}")
        return first, x, (f"case when {x} is null then {missing} when {x} not in ({allowed}) "
                          f"then {prefix} || {repr_t} || {message} end")
    if kind == "bool":
        true_words = ", ".join(literal(w) for w in TRUE_WORDS)
        false_words = ", ".join(literal(w) for w in FALSE_WORDS)
        first = (f"case when lower({r}) in ({true_words}) then true when lower({r}) in ({false_words}) then false "
                 f"when lower({t}) in ({true_words}) then true when lower({t}) in ({false_words}) then false end")
        return first, x, (f"case when {x} is not null then null when {t} is null then {missing} "
                          f"else {prefix} || {repr_t} || ' is not a yes/no value' end")
    unrecognised = f"{literal(name + ': unrecognised date/time ')} || {repr_t}"
    if kind in ("date", "timestamp"):
        first = f"coalesce({_iso_timestamp(r)}, pg_temp.hospital_ops_timestamp({t}))"
        error = f"case when {x} is not null then null when {t} is null then {missing} else {unrecognised} end"
        return first, (f"{x}::date" if kind == "date" else x), error
    if kind == "month":
        month = f"(regexp_match({x}, '{_MONTH}'))"
        value = (f"case when {x} ~ '{_MONTH}' then case when {month}[2]::int between 1 and 12 then "
                 f"make_date({month}[1]::int, {month}[2]::int, 1) end "
                 f"else date_trunc('month', coalesce({_iso_timestamp(x)}, pg_temp.hospital_ops_timestamp({x})))::date end")
        error = (f"case when {x} is null then {missing} when ({value}) is not null then null "
                 f"when {x} ~ '{_MONTH}' then {literal(name + ': month out of range in ')} || {repr_t} "
                 f"else {literal(name + ': unrecognised date/time ')} || {repr_t} end")
        return first, value, error
    # int / decimal: reference_parsing._number, then the plausibility bounds
    first = f"coalesce({_plain_number(r)}, {_number(t)})"
    checks = [f"when {t} is null then {missing}",
              f"when {x} is null then {prefix} || {repr_t} || ' is not a number'",
              f"when {x} in ('NaN', 'Infinity', '-Infinity') then {prefix} || {repr_t} || ' is not a finite number'"]
    if kind == "int":
        checks.append(f"when {x} <> trunc({x}) then {prefix} || {repr_t} || ' is not a whole number'")
    if column.min is not None:
        checks.append(f"when {x} < {literal(_bound(column.min))}::numeric then {prefix} || pg_temp.hospital_ops_shown({t}) "
                      f"|| {literal(' below plausible minimum ' + _bound(column.min))}")
    if column.max is not None:
        checks.append(f"when {x} > {literal(_bound(column.max))}::numeric then {prefix} || pg_temp.hospital_ops_shown({t}) "
                      f"|| {literal(f' outside plausible range [{column.min}, {column.max}]')}")
    in_range = "true"
    if kind == "int":
        # beyond bigint the Python loader's COPY failed the whole night; here the row is quarantined
        in_range = f"{x} between {_BIGINT[0]} and {_BIGINT[1]}"
        checks.append(f"when not ({in_range}) then {prefix} || {repr_t} || ' is out of range for a whole number'")
    # the common case first: a finite number within its bounds is no error, whatever the column
    within = [f"{x} not in ('NaN', 'Infinity', '-Infinity')"]
    if kind == "int":
        within.append(f"{x} = trunc({x}) and {in_range}")
    if column.min is not None:
        within.append(f"{x} >= {literal(_bound(column.min))}::numeric")
    if column.max is not None:
        within.append(f"{x} <= {literal(_bound(column.max))}::numeric")
    error = f"case when {x} is not null and {' and '.join(within)} then null " + " ".join(checks) + " end"
    value = f"case when {x} = trunc({x}) and {in_range} then {x}::bigint end" if kind == "int" else x
    return first, value, error


def _errors_sql(checks: list[tuple[str, str]]) -> str:
    """The messages of the failing checks joined by '; ', or NULL: each check is (the condition under which
    it passes, its message expression). A row that passes them all (nearly every row) costs only the
    conditions; the messages are built, and joined, only for a row that fails one."""
    if not checks:
        return "null"
    passes = " and ".join(f"({ok})" for ok, _ in checks)
    return f"case when {passes} then null else nullif(concat_ws('; ', {', '.join(m for _, m in checks)}), '') end"


def _bound_checks(entity: Entity, bounds: DateBounds | None = None) -> list[tuple[str, str]]:
    """A date outside its plausible range (`Column.dates`, limits from `config.date_bounds`, read once a
    night by the loader and passed here) is an error of the row, after conversion. The message names
    the limit, never the value (a birth date is personal)."""
    from hospital_ops.config import date_bounds

    bounds = bounds or date_bounds()
    business = "$4::date"
    near_future = f"{business} + {int(bounds.future_tolerance_days)}"
    limits = {
        "event": (bounds.history_start, near_future,
                  f"the history start {bounds.history_start} (history_start_date)",
                  f"{bounds.future_tolerance_days} days after the business date (future_date_tolerance_days)"),
        "register": (bounds.register_start, near_future, f"{bounds.register_start} (register_start_date)",
                     f"{bounds.future_tolerance_days} days after the business date (future_date_tolerance_days)"),
        "term": (bounds.register_start, f"({business} + interval '{int(bounds.term_horizon_years)} years')::date",
                 f"{bounds.register_start} (register_start_date)",
                 f"{bounds.term_horizon_years} years after the business date (term_horizon_years)"),
    }
    checks = []
    for i, column in enumerate(entity.columns):
        if column.type not in ("date", "timestamp", "month"):
            continue
        lower, upper, lower_text, upper_text = limits[column.dates]
        message = (f"case when v{i}::date < date {literal(lower.isoformat())} "
                   f"then {literal(f'{column.name}: before {lower_text}')} "
                   f"when v{i}::date > {upper} then {literal(f'{column.name}: more than {upper_text}')} end")
        checks.append((f"v{i} is null or v{i}::date between date {literal(lower.isoformat())} and {upper}", message))
    return checks


def _rule_checks(entity: Entity) -> list[tuple[str, str]]:
    """Each row rule between two columns (`Entity.row_rules`), when both have a value."""
    index = {column.name: i for i, column in enumerate(entity.columns)}
    rules = [f"v{index[rule.left]} {rule.op} v{index[rule.right]}" for rule in entity.row_rules]
    return [(f"({rule}) is not false", f"case when not ({rule}) then {literal(r.message)} end")
            for rule, r in zip(rules, entity.row_rules, strict=True)]


# $5…$7 describe the files in the landing table, in landing order: file i's rows are numbered from
# first_lines[i] on, and its row number (the physical line) is the row's number less line_offsets[i]
FILE_LOAD_PARAMETERS = ("run_id text", "source text", "entity text", "batch_date date", "source_files text[]",
                        "first_lines bigint[]", "line_offsets bigint[]")


def file_load_sql(source: Source, entity: Entity, pseudonymised: frozenset[str] = frozenset(),
                  bounds: DateBounds | None = None) -> str:
    """One statement that checks the landing table's rows and inserts them into raw or quarantine.

    Parameters $1… as FILE_LOAD_PARAMETERS (the statement is prepared once per entity and night, and
    one execution checks every file in the landing table: a night of a thousand small files is a few
    executions, not a thousand). Returns one row per file and outcome: (source_file, 'loaded', NULL, n)
    and (source_file, 'quarantined', reason, n) per distinct reason, and (source_file,
    'already_quarantined', reason, n) for rows an earlier night quarantined with the same content (not
    quarantined again). An exact duplicate is a duplicate of an earlier row of the same file.
    The OFFSET 0 subqueries keep PostgreSQL from inlining each level into the next, so every
    expression is computed once per row.
    """
    columns = entity.columns
    n = range(len(columns))
    converted = [_column_sql(c, i, c.name in pseudonymised) for i, c in zip(n, columns, strict=True)]
    raw_cells = ", ".join(f"l.s{i} as r{i}" for i in n)
    raw_names = ", ".join(f"r{i}" for i in n)
    firsts = ", ".join(f"{first} as x{i}" for i, (first, _, _) in enumerate(converted))
    values = ", ".join(f"{value} as v{i}" for i, (_, value, _) in enumerate(converted))
    errors = ", ".join(f"{error} as e{i}" for i, (_, _, error) in enumerate(converted))
    conversion_errors = _errors_sql([(f"e{i} is null", f"e{i}") for i in n])
    reference_checks = []
    for i, column in zip(n, columns, strict=True):
        if column.references:
            ref_entity, ref_column = column.references
            ref = source.entity(ref_entity)
            ref_raw = ref.column(ref_column).raw_name
            message = literal(f" (not in {source.name} {ref_entity})")
            known = f"select {ref_raw} from {RAW_SCHEMA}.{ref.raw_table} where {ref_raw} is not null"
            unknown = (f"case when v{i} is not null and v{i} not in ({known}) "
                       f"then {literal(f'{column.name}: unknown {ref_column} ')} "
                       f"|| pg_temp.hospital_ops_repr(v{i}) || {message} end")
            reference_checks.append((f"v{i} is null or v{i} in ({known})", unknown))
    reference_errors = _errors_sql(reference_checks)
    row_errors = _errors_sql(_bound_checks(entity, bounds) + _rule_checks(entity))
    as_text = [f"v{i}::text" for i in n]
    row_hash = ("left(encode(sha256(" + " || '\\x1f'::bytea || ".join(
        f"coalesce(convert_to({v}, 'UTF8'), '\\x00'::bytea)" for v in as_text) + "), 'hex'), 32)")

    def record(failed: bool) -> str:
        pairs = []
        for i, column in zip(n, columns, strict=True):
            shown = as_text[i]
            if failed:  # a failing cell shows what arrived (pseudonymized if personal)
                arrived = _hmac(f"coalesce(r{i}, '')") if column.pii else f"r{i}"
                shown = f"case when e{i} is null then {as_text[i]} else {arrived} end"
            pairs.append(f"{literal(column.raw_name)}, {shown}")
        return f"jsonb_build_object({', '.join(pairs)})"

    raw_columns = ", ".join(c.raw_name for c in columns)
    value_list = ", ".join(f"v{i}" for i in n)
    landing = landing_table(entity)
    return f"""
with checked as materialized (
    select _file, _row_number, {value_list}, _errors, _failed_record,
           case when _errors is null then {row_hash} end as _row_hash
    from (
        select *, coalesce(_conversion_errors,
                           case when _conversion_errors is null then coalesce({row_errors}, {reference_errors}) end)
                  as _errors,
               case when _conversion_errors is not null then {record(failed=True)} end as _failed_record
        from (
            select *, {conversion_errors} as _conversion_errors
            from (select _file, _row_number, {raw_names}, {values}, {errors}
                  from (select *, {firsts} from (select l._file, (l._line - $7[l._file])::integer as _row_number,
                                                        {raw_cells}
                                                 from (select width_bucket(_line, $6) as _file, * from {landing}) l) l
                        offset 0) first
                  offset 0) converted
            offset 0) with_conversion
        offset 0) judged
),
first_seen as (
    select _file, _row_hash, min(_row_number) as first_row from checked where _errors is null
    group by _file, _row_hash having count(*) > 1
),
loaded as (
    insert into {RAW_SCHEMA}.{entity.raw_table} ({raw_columns}, _run_id, _batch_date, _source_file, _row_number, _row_hash)
    select {value_list}, $1, $4, $5[c._file], c._row_number, c._row_hash
    from checked c left join first_seen f on f._file = c._file and f._row_hash = c._row_hash
    where c._errors is null and (f.first_row is null or f.first_row = c._row_number)
    returning _source_file
),
rejected as materialized (
    select c._file, c._row_number,
           coalesce(c._errors, 'duplicate: same content as ' || $5[c._file] || ' row ' || f.first_row) as reason,
           coalesce(c._failed_record, {record(failed=False)}) as record
    from checked c left join first_seen f on f._file = c._file and f._row_hash = c._row_hash
    where c._errors is not null or f.first_row < c._row_number
),
judged_rejected as materialized (
    -- a row an earlier night already quarantined with the same content (an extractor's look-back reads
    -- it again every night) is counted, not quarantined again: keyed by the hash of its recorded content
    select r.*, md5(r.record::text) as content_hash,
           exists (select 1 from {RAW_SCHEMA}._quarantine q where q.source = $2 and q.entity = $3
                   and q.batch_date < $4 and q.content_hash = md5(r.record::text)) as already_quarantined
    from rejected r
),
quarantined as (
    insert into {RAW_SCHEMA}._quarantine (run_id, source, entity, batch_date, source_file, row_number, reason, record,
                                          content_hash)
    select $1, $2, $3, $4, $5[_file], _row_number, reason, record, content_hash
    from judged_rejected where not already_quarantined
    returning source_file, reason
)
select _source_file, 'loaded', null, count(*) from loaded group by _source_file
union all
select source_file, 'quarantined', reason, count(*) from quarantined group by source_file, reason
union all
select $5[_file], 'already_quarantined', reason, count(*) from judged_rejected where already_quarantined
group by _file, reason
"""

