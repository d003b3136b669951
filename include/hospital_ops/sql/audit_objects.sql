-- Point-in-time access for auditors 审计查询. Everything here reads history (snapshots, the run
-- ledger, the action trail); nothing here reads raw data or personal identifiers. Functions and
-- views run with their owner's (the writer's) rights, so the auditor role needs no access to the
-- schemas behind them.

-- A statement preceded by "-- @requires <relation>" is (re)created only once that relation exists
-- (snapshots appear after the first successful night).

-- Every run: what ran, on what code, with what verdict.
create or replace view audit.runs as
select
    seq,
    run_id,
    business_date,
    status,
    recorded_at,
    payload ->> 'code_version' as code_version,
    (payload -> 'quality_gate' ->> 'failed')::int as gate_failures,
    jsonb_array_length(payload -> 'inputs') as input_files,
    (select coalesce(sum((i ->> 'rows_read')::bigint), 0) from jsonb_array_elements(payload -> 'inputs') i) as rows_read,
    row_hash
from audit.run_ledger;

-- Runs that started and never closed: a night killed (or a machine lost) between its "started" row
-- and its closing row.
create or replace view audit.open_runs as
select started.seq, started.run_id, started.business_date, started.recorded_at as started_at
from audit.run_ledger as started
where started.status = 'started'
  and not exists (
      select from audit.run_ledger as closing
      where closing.run_id = started.run_id and closing.status <> 'started' and closing.seq > started.seq
  );

-- The moment the figures for business date D were last published: the ledger time of the latest
-- published run for a business date on or before D. Pass it to the *_as_of functions.
create or replace function audit.published_as_of(p_business_date date) returns timestamptz
language sql stable as $$
    select max(recorded_at)
    from audit.run_ledger
    where status = 'published' and business_date <= p_business_date
$$;

-- @requires snapshots.snp_vendor_credit_rating
-- A vendor's credit ratings as they stood at a moment (one row per rated month known then).
create or replace function audit.vendor_rating_as_of(p_vendor_id text, p_as_of timestamptz)
returns table (
    vendor_id text, rating_month date, credit_rating text, total_score numeric,
    qualification_score numeric, service_quality_score numeric, credit_record_score numeric,
    evidence jsonb, valid_from timestamp, valid_to timestamp
)
language sql stable as $$
    select vendor_id, rating_month, credit_rating, total_score, qualification_score, service_quality_score,
           credit_record_score, evidence, dbt_valid_from, dbt_valid_to
    from snapshots.snp_vendor_credit_rating
    where vendor_id = p_vendor_id
      and dbt_valid_from <= p_as_of
      and (dbt_valid_to is null or dbt_valid_to > p_as_of)
    order by rating_month
$$;

-- @requires snapshots.snp_vendor_month_kpis_closed
-- A closed month's vendor KPIs as published at a moment (later corrections are later versions).
create or replace function audit.vendor_month_kpis_as_of(p_month date, p_as_of timestamptz)
returns setof snapshots.snp_vendor_month_kpis_closed
language sql stable as $$
    select *
    from snapshots.snp_vendor_month_kpis_closed
    where month = date_trunc('month', p_month)::date
      and dbt_valid_from <= p_as_of
      and (dbt_valid_to is null or dbt_valid_to > p_as_of)
    order by vendor_id
$$;

-- @requires snapshots.snp_vendor_risk_warnings
-- The warnings that stood at a moment, with their status and evidence then.
create or replace function audit.vendor_warnings_as_of(p_as_of timestamptz)
returns setof snapshots.snp_vendor_risk_warnings
language sql stable as $$
    select *
    from snapshots.snp_vendor_risk_warnings
    where dbt_valid_from <= p_as_of
      and (dbt_valid_to is null or dbt_valid_to > p_as_of)
    order by vendor_id, rule_id, period_month
$$;

-- @requires snapshots.snp_vendor__price_list
-- Every version of a vendor's contracted price for an item, oldest first.
create or replace function audit.price_versions(p_vendor_id text, p_item_code text)
returns table (
    vendor_id text, item_code text, item_name text, effective_from date, unit_price_cny numeric,
    reference_price_cny numeric, source_file text, valid_from timestamp, valid_to timestamp
)
language sql stable as $$
    select vendor_id, item_code, item_name, effective_from, unit_price_cny, reference_price_cny, source_file,
           dbt_valid_from, dbt_valid_to
    from snapshots.snp_vendor__price_list
    where vendor_id = p_vendor_id and item_code = p_item_code
    order by effective_from, dbt_valid_from
$$;

-- @requires snapshots.snp_vendor__contracts
-- Every version of a contract (SLA targets, term, value), oldest first.
create or replace function audit.contract_versions(p_contract_id text)
returns setof snapshots.snp_vendor__contracts
language sql stable as $$
    select * from snapshots.snp_vendor__contracts where contract_id = p_contract_id order by dbt_valid_from
$$;

-- @requires ops.warning_actions
-- Who acknowledged or resolved which warning, when and why (append-only trail).
create or replace view audit.warning_actions as
select warning_id, action, actor, note, acted_at
from ops.warning_actions;

-- @requires ops.warning_actions
-- The action trail is append-only too: an acknowledgement or resolution is never edited away.
drop trigger if exists warning_actions_append_only on ops.warning_actions;
create trigger warning_actions_append_only before update or delete on ops.warning_actions
    for each row execute function audit.refuse_change();

-- @requires snapshots.snp_reference__vendor_warning_rules
-- Every version of every warning threshold 预警阈值变更: when it took effect, what it was before.
create or replace view audit.warning_rule_changes as
select
    rule_id,
    risk_tier,
    colour,
    metric,
    lag(lower_bound) over version_order as previous_lower_bound,
    lower_bound,
    lag(upper_bound) over version_order as previous_upper_bound,
    upper_bound,
    action,
    dbt_valid_from as effective_from,
    dbt_valid_to as effective_to,
    (select r.payload ->> 'code_version' from audit.run_ledger r
     where r.recorded_at >= s.dbt_valid_from order by r.recorded_at limit 1) as code_version
from snapshots.snp_reference__vendor_warning_rules s
window version_order as (partition by rule_id, risk_tier order by dbt_valid_from);

-- @requires ops.score_adjustments
-- Appeals 异议 are recorded, never rewritten.
drop trigger if exists score_adjustments_append_only on ops.score_adjustments;
create trigger score_adjustments_append_only before update or delete on ops.score_adjustments
    for each row execute function audit.refuse_change();

-- @requires ops.score_adjustments
-- @requires scoring.department_performance_score
-- Every appeal decision on a department's score: old (computed) and new value, who, when, why.
create or replace view audit.score_adjustments as
select
    adjustments.department_id,
    adjustments.month,
    scores.computed_score as old_score,
    adjustments.adjusted_score as new_score,
    adjustments.reason,
    adjustments.requested_by,
    adjustments.decided_by,
    adjustments.decided_at
from ops.score_adjustments as adjustments
left join scoring.department_performance_score as scores
    on scores.department_id = adjustments.department_id and scores.month = adjustments.month;

-- @requires snapshots.snp_department_month_ledger_closed
-- A closed month's department ledger as published at a moment 某日发布的工作台账.
create or replace function audit.department_ledger_as_of(p_month date, p_as_of timestamptz)
returns setof snapshots.snp_department_month_ledger_closed
language sql stable as $$
    select *
    from snapshots.snp_department_month_ledger_closed
    where month = date_trunc('month', p_month)::date
      and dbt_valid_from <= p_as_of
      and (dbt_valid_to is null or dbt_valid_to > p_as_of)
    order by department_id
$$;
