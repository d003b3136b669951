-- Everything a warning rule can look at, in one long form 预警观测值: one row per vendor, period,
-- subject (a device, certificate, item… or '-') and metric, with the evidence that produced it.
-- Rules in the seed vendor_warning_rules are bands over these metrics. It reads the vendor KPI mart,
-- so it is built with scoring, after the quality gate.
with kpis as (
    select * from {{ ref('fct_vendor_month_kpis') }}
),

registry as (
    select * from {{ ref('stg_vendor__registry') }}
),

standards as (
    select * from {{ ref('vendor_service_standards') }}
),

monthly_rates as (
    {%- set rates = {
        'lab_accuracy': ['lab_qc_runs_accurate', 'lab_qc_runs'],
        'report_delay_rate': ['reports_due - reports_on_time', 'reports_due'],
        'delivery_delay_rate': ['deliveries_late', 'deliveries'],
        'satisfaction_rate': ['satisfaction_satisfied', 'satisfaction_sample'],
        'spot_check_pass_rate': ['inspection_items_passed', 'inspection_items_checked'],
    } %}
    {%- for metric, parts in rates.items() %}
    select
        vendor_id,
        month as period_month,
        is_closed_month,
        '-' as subject,
        '{{ metric }}' as metric,
        {{ metric }} as observed_value,
        jsonb_build_object('numerator', {{ parts[0] }}, 'denominator', {{ parts[1] }})
        {%- if metric == 'satisfaction_rate' %} || jsonb_build_object(
            'basis', satisfaction_basis, 'survey_satisfaction_rate', survey_satisfaction_rate,
            'survey_questionnaires', survey_questionnaires,
            'self_reported_satisfaction_rate', self_reported_satisfaction_rate
        ){% endif %} as evidence
    from kpis
    where {{ metric }} is not null
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

monthly_counts as (
    {%- set counts = ['cold_chain_excursions', 'privacy_leak_incidents', 'medical_accident_incidents',
                      'fake_qualification_incidents'] %}
    {%- for metric in counts %}
    select
        vendor_id,
        month as period_month,
        is_closed_month,
        '-' as subject,
        '{{ metric }}' as metric,
        {{ metric }}::numeric as observed_value,
        {% if metric == 'cold_chain_excursions' -%}
        jsonb_build_object(
            'max_temperature_c', cold_chain_max_excursion_c,
            'readings_in_range', cold_chain_readings_in_range, 'readings', cold_chain_readings
        )
        {%- else -%}
        jsonb_build_object('incidents_in_month', incidents)
        {%- endif %} as evidence
    from kpis
    where {{ metric }} > 0
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

prices_in_force as (
    -- each item's price in force on the business date; one observation per price version, so a
    -- standing price keeps one warning instead of one per month
    select distinct on (vendor_id, item_code) *
    from {{ ref('stg_vendor__price_list') }}
    where effective_from <= {{ business_date() }}
    order by vendor_id asc, item_code asc, effective_from desc
),

price as (
    -- 价格偏离度: (contract price − reference price) / reference price
    select
        vendor_id,
        date_trunc('month', effective_from)::date as period_month,
        true as is_closed_month,
        item_code as subject,
        'price_deviation_max' as metric,
        {{ safe_ratio('unit_price_cny - reference_price_cny', 'reference_price_cny') }} as observed_value,
        jsonb_build_object(
            'item_code', item_code, 'item_name', item_name, 'unit_price_cny', unit_price_cny,
            'reference_price_cny', reference_price_cny, 'effective_from', effective_from
        ) as evidence
    from prices_in_force
),

delivery_trend as (
    -- 配送延迟趋势: change of the delay rate over three months
    select
        vendor_id,
        month as period_month,
        is_closed_month,
        '-' as subject,
        'delivery_delay_rate_change_3m' as metric,
        delivery_delay_rate
        - lag(delivery_delay_rate, 3) over (partition by vendor_id order by month) as observed_value,
        jsonb_build_object(
            'delay_rate', delivery_delay_rate,
            'delay_rate_3_months_before', lag(delivery_delay_rate, 3) over (partition by vendor_id order by month)
        ) as evidence
    from kpis
    where is_closed_month
),

volume_surge as (
    -- 业务量激增而及时率下降: volume growth, counted only when timeliness fell below standard
    select
        kpis.vendor_id,
        kpis.month as period_month,
        kpis.is_closed_month,
        '-' as subject,
        'volume_growth_while_timeliness_falls' as metric,
        case
            when
                kpis.report_timeliness < standards.standard
                and kpis.report_timeliness
                < lag(kpis.report_timeliness) over (partition by kpis.vendor_id order by kpis.month)
                then kpis.service_volume_mom_growth
        end as observed_value,
        jsonb_build_object(
            'service_volume', kpis.service_volume,
            'service_volume_mom_growth', kpis.service_volume_mom_growth,
            'report_timeliness', kpis.report_timeliness,
            'report_timeliness_previous_month',
            lag(kpis.report_timeliness) over (partition by kpis.vendor_id order by kpis.month),
            'timeliness_standard', standards.standard
        ) as evidence
    from kpis
    inner join standards on standards.metric = 'report_timeliness'
    where kpis.is_closed_month
),

latest_certificates as (
    select distinct on (vendor_id, certificate_type) *
    from {{ ref('stg_vendor__qualifications') }}
    order by vendor_id asc, certificate_type asc, expires_on desc
),

certificates as (
    -- 资质到期: days from the business date to the expiry of each vendor's latest certificate of a type
    select
        vendor_id,
        date_trunc('month', expires_on)::date as period_month,
        true as is_closed_month,
        certificate_no as subject,
        'days_to_certificate_expiry' as metric,
        (expires_on - {{ business_date() }})::numeric as observed_value,
        jsonb_build_object('certificate_type', certificate_type, 'expires_on', expires_on) as evidence
    from latest_certificates
),

related_party as (
    -- 关联关系: from the first registry export that declared it
    select
        vendor_id,
        date_trunc('month', min(delivered_on))::date as period_month,
        true as is_closed_month,
        'registry' as subject,
        'related_party_declared' as metric,
        1::numeric as observed_value,
        jsonb_build_object('declared_in', min(source_file)) as evidence
    from {{ ref('stg_vendor__registry_exports') }}
    where related_party_declared
    group by vendor_id
),

observations as (
    select * from monthly_rates
    union all
    select * from monthly_counts
    union all
    select * from price
    union all
    select * from delivery_trend
    where observed_value is not null
    union all
    select * from volume_surge
    where observed_value is not null
    union all
    select * from certificates
    union all
    select * from related_party
)

select
    observations.*,
    registry.risk_tier
from observations
inner join registry on observations.vendor_id = registry.vendor_id
