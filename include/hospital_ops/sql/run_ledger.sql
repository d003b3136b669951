-- The run ledger and what protects it, owned by hospital_ops_ledger (a role nobody logs in as).
-- Run as a superuser, once per database, at setup: `hospital-ops warehouse start` (embedded),
-- `hospital-ops warehouse roles` (a DBA, with WAREHOUSE_ADMIN_URL), or the compose stack's
-- docker/warehouse-init. Idempotent; it also takes over a ledger an older release let the writer own.
--
-- The writer may read the ledger and append to it through audit.append_run, nothing else: it cannot
-- update, delete or truncate rows, disable or drop the trigger, replace the trigger's function or the
-- append function, or drop the table or the schema (all of which need the owner).

create schema if not exists audit;
alter schema audit owner to hospital_ops_ledger;
-- the writer still creates its own objects here (publications, views and functions for auditors)
grant usage, create on schema audit to hospital_ops_writer;
grant usage on schema audit to auditor;

create table if not exists audit.run_ledger (
    seq bigint generated always as identity primary key,
    payload jsonb not null,
    prev_hash text not null,
    row_hash text not null unique,
    run_id text generated always as (payload ->> 'run_id') stored,
    status text generated always as (payload ->> 'status') stored,
    business_date date not null,  -- a copy for queries; verify checks it against the payload
    recorded_at timestamptz not null default now()
);
alter table audit.run_ledger owner to hospital_ops_ledger;
revoke all on audit.run_ledger from public, hospital_ops_writer, auditor, bi_reader;
grant select on audit.run_ledger to hospital_ops_writer, auditor;

create or replace function audit.refuse_change() returns trigger language plpgsql as $$
begin
    raise exception '% is append-only: % refused', tg_table_schema || '.' || tg_table_name, tg_op;
end $$;
alter function audit.refuse_change() owner to hospital_ops_ledger;

drop trigger if exists run_ledger_append_only on audit.run_ledger;
create trigger run_ledger_append_only before update or delete on audit.run_ledger
    for each row execute function audit.refuse_change();
drop trigger if exists run_ledger_no_truncate on audit.run_ledger;
create trigger run_ledger_no_truncate before truncate on audit.run_ledger
    for each statement execute function audit.refuse_change();

-- The only way in: chain one payload onto the head, one appender at a time. SECURITY DEFINER runs
-- it with the owner's rights; its search_path is fixed and every name qualified, so a caller cannot
-- slip its own objects in. Returns the new head, which the pipeline signs as its anchor.
create or replace function audit.append_run(p_payload jsonb, p_business_date date)
returns table (ledger_seq bigint, ledger_hash text, ledger_rows bigint)
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    v_prev text;
    v_seq bigint;
    v_hash text;
begin
    if p_payload ->> 'run_id' is null or p_payload ->> 'status' is null then
        raise exception 'a run ledger row needs a run_id and a status';
    end if;
    if p_payload ->> 'business_date' is distinct from p_business_date::text then
        raise exception 'the business date % differs from the payload''s %', p_business_date,
            p_payload ->> 'business_date';
    end if;
    lock table audit.run_ledger in exclusive mode;
    select l.row_hash into v_prev from audit.run_ledger l order by l.seq desc limit 1;
    v_prev := coalesce(v_prev, repeat('0', 64));
    insert into audit.run_ledger as l (payload, business_date, prev_hash, row_hash)
    values (p_payload, p_business_date, v_prev,
            encode(sha256(convert_to(v_prev || p_payload::text, 'UTF8')), 'hex'))
    returning l.seq, l.row_hash into v_seq, v_hash;
    return query select v_seq, v_hash, (select count(*) from audit.run_ledger);
end $$;
alter function audit.append_run(jsonb, date) owner to hospital_ops_ledger;
revoke all on function audit.append_run(jsonb, date) from public;
grant execute on function audit.append_run(jsonb, date) to hospital_ops_writer;
