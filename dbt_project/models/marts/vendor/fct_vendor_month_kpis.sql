-- Vendor KPIs 第三方服务商月度指标: one row per vendor per month. Every rate keeps its numerator and
-- denominator beside it, so a warning or rating built on it can show its evidence.
-- Satisfaction 满意度 has two measures kept apart: what the vendor declares in its service report
-- (self_reported_satisfaction_rate = patients_satisfied / patients_surveyed) and what the hospital's
-- own survey measured (survey_satisfaction_rate, fct_vendor_month_satisfaction). `satisfaction_rate`,
-- which the warning rules, standards and credit rating read, is the hospital's survey when the month
-- has at least var survey_min_sample_for_vendor_rate questionnaires — an independent measurement
-- is preferred to a declaration — and the vendor's declaration otherwise (satisfaction_basis says
-- which; satisfaction_satisfied / satisfaction_sample are its parts).
--
-- Incremental by month 按月增量: the cold-chain readings are the bulk of the vendor data, so a night
-- recomputes their figures only for the months it touched. A month is touched when
--   * any other figure (from inputs a hundred times smaller, computed for every month each night)
--     differs from the stored row, or the month is new: this catches corrections that move a row to
--     another month, and the figures the business date moves (reports and deliveries falling due);
--   * a reading landed since the last build falls in it, or an excursion such a reading belongs to
--     started in it.
-- `dbt build --full-refresh` rebuilds every month and must give the same table.
{#- the stored figures `measured` computes (staff_certified and staff_trained_on_pace are stored as
    shares of staff_active_end, compared below) -#}
{%- set measured_columns = [
    'month_end', 'is_closed_month', 'service_type', 'risk_tier',
    'lab_qc_runs', 'lab_qc_runs_accurate', 'reports_received', 'reports_due', 'reports_on_time',
    'deliveries', 'deliveries_late', 'staff_headcount_start', 'staff_leavers', 'staff_active_end',
    'inspections', 'inspection_items_checked',
    'inspection_items_passed', 'incidents', 'privacy_leak_incidents', 'medical_accident_incidents',
    'fake_qualification_incidents', 'service_report_revision', 'service_volume', 'service_volume_mom_growth',
    'complaints', 'patients_surveyed', 'patients_satisfied', 'survey_questionnaires', 'survey_answers',
    'survey_satisfied_answers', 'survey_satisfaction_rate', 'survey_meets_min_sample',
    'price_deviation_item_code', 'price_deviation_max'] %}
{{ config(
    materialized='incremental',
    unique_key='month',
    incremental_strategy='delete+insert',
    indexes=[{'columns': ['vendor_id', 'month'], 'unique': True}],
) }}
{%- set bookmark = incremental_bookmark('built_on') if is_incremental() else none %}

with spine as (
    select * from {{ ref('int_vendor__month_spine') }}
),

registry as (
    select * from {{ ref('stg_vendor__registry') }}
),

price_list as (
    select * from {{ ref('stg_vendor__price_list') }}
),

lab_qc as (
    -- 室内质控准确率: a run is accurate when |measured − expected| ≤ allowed deviation × expected
    select
        vendor_id,
        date_trunc('month', run_at)::date as month,
        count(*) as lab_qc_runs,
        count(*) filter (
            where abs(measured_value - expected_value) <= abs(expected_value) * allowed_deviation_pct / 100
        ) as lab_qc_runs_accurate
    from {{ ref('stg_vendor__lab_qc_results') }}
    group by vendor_id, date_trunc('month', run_at)::date
),

turnaround as (
    -- 报告及时率: a report is due once issued or once its promised time has passed
    select
        vendor_id,
        date_trunc('month', received_at)::date as month,
        count(*) as reports_received,
        count(*) filter (
            -- judged at the end of the business day 业务日终: due during the business date counts tonight
            where issued_at is not null or received_at + promised_hours * interval '1 hour' < {{ business_date() }} + 1
        ) as reports_due,
        count(*) filter (
            where issued_at <= received_at + promised_hours * interval '1 hour'
        ) as reports_on_time
    from {{ ref('stg_vendor__report_turnaround') }}
    group by vendor_id, date_trunc('month', received_at)::date
),

deliveries as (
    -- 配送延迟率: late when delivered after the promised time, or still undelivered past it
    select
        vendor_id,
        date_trunc('month', promised_at)::date as month,
        -- judged at the end of the business day 业务日终: promised during the business date counts tonight
        count(*) filter (where delivered_at is not null or promised_at < {{ business_date() }} + 1) as deliveries,
        count(*) filter (
            where delivered_at > promised_at or (delivered_at is null and promised_at < {{ business_date() }} + 1)
        ) as deliveries_late
    from {{ ref('stg_vendor__deliveries') }}
    group by vendor_id, date_trunc('month', promised_at)::date
),

staff as (
    -- 人员流失率 / 持证率 / 培训达标率, from the roster export describing the end of each month
    select
        vendor_id,
        as_of_month as month,
        count(*) filter (
            where joined_on < as_of_month and (left_on is null or left_on >= as_of_month)
        ) as staff_headcount_start,
        count(*) filter (
            where left_on >= as_of_month and left_on < as_of_month + interval '1 month'
        ) as staff_leavers,
        count(*) filter (where left_on is null or left_on >= as_of_month + interval '1 month') as staff_active_end,
        count(*) filter (
            where (left_on is null or left_on >= as_of_month + interval '1 month') and certified
        ) as staff_certified,
        -- on pace 培训进度达标: the year's hours pro rata over the months since the later of the year
        -- start and the person's joining month (this year's hires are paced from when they joined)
        count(*) filter (
            where (left_on is null or left_on >= as_of_month + interval '1 month')
            and training_hours_ytd
            >= {{ var('trained_hours_per_year') }} / 12.0 * (
                extract(month from as_of_month) + 1 - extract(month from greatest(
                    date_trunc('year', as_of_month), date_trunc('month', joined_on)
                ))
            )
        ) as staff_trained_on_pace
    from {{ ref('stg_vendor__staff_roster_exports') }}
    group by vendor_id, as_of_month
),

inspections as (
    -- 抽查合格率
    select
        vendor_id,
        date_trunc('month', inspected_on)::date as month,
        count(*) as inspections,
        sum(items_checked) as inspection_items_checked,
        sum(items_passed) as inspection_items_passed
    from {{ ref('stg_vendor__inspections') }}
    group by vendor_id, date_trunc('month', inspected_on)::date
),

incidents as (
    select
        vendor_id,
        date_trunc('month', occurred_on)::date as month,
        count(*) filter (where incident_type = 'privacy_leak') as privacy_leak_incidents,
        count(*) filter (where incident_type = 'medical_accident') as medical_accident_incidents,
        count(*) filter (where incident_type = 'fake_qualification') as fake_qualification_incidents,
        count(*) as incidents
    from {{ ref('stg_vendor__incidents') }}
    group by vendor_id, date_trunc('month', occurred_on)::date
),

reports as (
    select
        vendor_id,
        period as month,
        revision as service_report_revision,
        service_volume,
        complaints_received as complaints,
        patients_surveyed,
        patients_satisfied
    from {{ ref('stg_vendor__service_reports') }}
),

survey_satisfaction as (
    select * from {{ ref('fct_vendor_month_satisfaction') }}
),

prices_in_force as (
    -- the price of each item in force at the end of each month
    select distinct on (spine.vendor_id, spine.month, prices.item_code)
        spine.vendor_id,
        spine.month,
        prices.item_code,
        prices.unit_price_cny,
        prices.reference_price_cny
    from spine
    inner join price_list as prices
        on spine.vendor_id = prices.vendor_id and spine.month_end >= prices.effective_from
    order by spine.vendor_id asc, spine.month asc, prices.item_code asc, prices.effective_from desc
),

prices as (
    -- 价格偏离度: (contract price − public-hospital reference price) / reference price, worst item
    select distinct on (vendor_id, month)
        vendor_id,
        month,
        item_code as price_deviation_item_code,
        {{ safe_ratio('unit_price_cny - reference_price_cny', 'reference_price_cny') }} as price_deviation_max
    from prices_in_force
    order by vendor_id, month, (unit_price_cny - reference_price_cny) / nullif(reference_price_cny, 0) desc nulls last
),

measured as (
    -- every figure but the cold chain's, for every vendor and month
    select
        spine.vendor_id,
        spine.month,
        spine.month_end,
        spine.is_closed_month,
        registry.service_type,
        registry.risk_tier,
        coalesce(lab_qc.lab_qc_runs, 0) as lab_qc_runs,
        coalesce(lab_qc.lab_qc_runs_accurate, 0) as lab_qc_runs_accurate,
        coalesce(turnaround.reports_received, 0) as reports_received,
        coalesce(turnaround.reports_due, 0) as reports_due,
        coalesce(turnaround.reports_on_time, 0) as reports_on_time,
        coalesce(deliveries.deliveries, 0) as deliveries,
        coalesce(deliveries.deliveries_late, 0) as deliveries_late,
        staff.staff_headcount_start,
        staff.staff_leavers,
        staff.staff_active_end,
        staff.staff_certified,
        staff.staff_trained_on_pace,
        coalesce(inspections.inspections, 0) as inspections,
        coalesce(inspections.inspection_items_checked, 0) as inspection_items_checked,
        coalesce(inspections.inspection_items_passed, 0) as inspection_items_passed,
        coalesce(incidents.incidents, 0) as incidents,
        coalesce(incidents.privacy_leak_incidents, 0) as privacy_leak_incidents,
        coalesce(incidents.medical_accident_incidents, 0) as medical_accident_incidents,
        coalesce(incidents.fake_qualification_incidents, 0) as fake_qualification_incidents,
        reports.service_report_revision,
        reports.service_volume,
        {{ safe_ratio('reports.service_volume - lag(reports.service_volume) over same_vendor',
                      'lag(reports.service_volume) over same_vendor') }} as service_volume_mom_growth,
        reports.complaints,
        reports.patients_surveyed,
        reports.patients_satisfied,
        survey_satisfaction.questionnaires as survey_questionnaires,
        survey_satisfaction.answers as survey_answers,
        survey_satisfaction.satisfied_answers as survey_satisfied_answers,
        survey_satisfaction.satisfaction_rate as survey_satisfaction_rate,
        coalesce(survey_satisfaction.meets_min_sample, false) as survey_meets_min_sample,
        prices.price_deviation_item_code,
        prices.price_deviation_max
    from spine
    inner join registry on spine.vendor_id = registry.vendor_id
    left join lab_qc on spine.vendor_id = lab_qc.vendor_id and spine.month = lab_qc.month
    left join turnaround on spine.vendor_id = turnaround.vendor_id and spine.month = turnaround.month
    left join deliveries on spine.vendor_id = deliveries.vendor_id and spine.month = deliveries.month
    left join staff on spine.vendor_id = staff.vendor_id and spine.month = staff.month
    left join inspections on spine.vendor_id = inspections.vendor_id and spine.month = inspections.month
    left join incidents on spine.vendor_id = incidents.vendor_id and spine.month = incidents.month
    left join reports on spine.vendor_id = reports.vendor_id and spine.month = reports.month
    left join prices on spine.vendor_id = prices.vendor_id and spine.month = prices.month
    left join survey_satisfaction
        on spine.vendor_id = survey_satisfaction.vendor_id and spine.month = survey_satisfaction.month
    window same_vendor as (partition by spine.vendor_id order by spine.month)
),

readings as not materialized (
    -- inlined where it is read, so each reading uses the staging table's indexes
    select * from {{ ref('stg_vendor__cold_chain_readings') }}
),

{% if is_incremental() %}
changed_months as (
    select measured.month
    from measured
    left join {{ this }} as kept on measured.vendor_id = kept.vendor_id and measured.month = kept.month
    where
        kept.vendor_id is null
        or (
            {% for c in measured_columns %}measured.{{ c }}, {% endfor %}  -- noqa: LT05
            {{ safe_ratio('measured.staff_certified', 'measured.staff_active_end') }},
            {{ safe_ratio('measured.staff_trained_on_pace', 'measured.staff_active_end') }}
        )
        is distinct from
        (
            {% for c in measured_columns %}kept.{{ c }}, {% endfor %}  -- noqa: LT05
            kept.staff_certified_share,
            kept.staff_trained_share
        )
),

landed_readings as (
    select
        device_id,
        reading_at
    from readings
    where landed_batch_date > {{ bookmark }}
),

window_start as (
    -- the earliest month whose figures tonight may rebuild
    select least(
        (select min(changed_months.month) from changed_months),
        (select min(date_trunc('month', landed_readings.reading_at))::date from landed_readings)
    ) as month
),

excursion_windows as (
    -- per device, the readings after its last in-range reading before that month: every run that
    -- starts from then on is found whole
    select
        devices.device_id,
        coalesce(
            (
                select max(earlier.reading_at)
                from readings as earlier
                where
                    earlier.device_id = devices.device_id
                    and earlier.reading_at < (select window_start.month from window_start)
                    and earlier.temperature_c between {{ var('cold_chain_min_c') }} and {{ var('cold_chain_max_c') }}
            ),
            '-infinity'::timestamp
        ) as window_from
    from (
        select distinct device_id from readings
        where reading_at >= (select window_start.month from window_start)
    ) as devices
),

window_excursions as (
    {{ cold_chain_excursions(
        "(select readings.* from readings inner join excursion_windows"
        ~ " on readings.device_id = excursion_windows.device_id"
        ~ " and readings.reading_at > excursion_windows.window_from) as windowed") }}
),

months_to_build as (
    select changed_months.month from changed_months
    union
    select date_trunc('month', landed_readings.reading_at)::date from landed_readings
    union
    -- an excursion a landed reading extends or splits is counted in the month it started
    select date_trunc('month', window_excursions.started_at)::date
    from window_excursions
    where exists (
        select
        from landed_readings
        where
            landed_readings.device_id = window_excursions.device_id
            and landed_readings.reading_at between window_excursions.started_at and window_excursions.ended_at
    )
),

excursions_found as (
    select * from window_excursions
),
{% else %}
months_to_build as (
    select distinct month from measured
),

excursions_found as (
    select * from {{ ref('int_vendor__cold_chain_excursions') }}
),
{% endif %}

cold_chain as (
    -- 冷链合规率: share of readings within the allowed range
    select
        readings.vendor_id,
        months_to_build.month,
        count(*) as cold_chain_readings,
        count(*) filter (
            where readings.temperature_c between {{ var('cold_chain_min_c') }} and {{ var('cold_chain_max_c') }}
        ) as cold_chain_readings_in_range
    from months_to_build
    inner join readings
        on
            months_to_build.month <= readings.reading_at
            and readings.reading_at < months_to_build.month + interval '1 month'
    group by readings.vendor_id, months_to_build.month
),

excursions as (
    select
        vendor_id,
        date_trunc('month', started_at)::date as month,
        count(*) as cold_chain_excursions,
        max(max_temperature_c) as cold_chain_max_excursion_c
    from excursions_found
    where date_trunc('month', started_at)::date in (select months_to_build.month from months_to_build)
    group by vendor_id, date_trunc('month', started_at)::date
),

joined as (
    select
        measured.*,
        coalesce(cold_chain.cold_chain_readings, 0) as cold_chain_readings,
        coalesce(cold_chain.cold_chain_readings_in_range, 0) as cold_chain_readings_in_range,
        coalesce(excursions.cold_chain_excursions, 0) as cold_chain_excursions,
        excursions.cold_chain_max_excursion_c
    from measured
    left join cold_chain on measured.vendor_id = cold_chain.vendor_id and measured.month = cold_chain.month
    left join excursions on measured.vendor_id = excursions.vendor_id and measured.month = excursions.month
    where measured.month in (select months_to_build.month from months_to_build)
),

satisfaction_chosen as (
    select
        *,
        case
            when survey_meets_min_sample then 'hospital_survey'
            when patients_surveyed > 0 then 'vendor_self_reported'
        end as satisfaction_basis,
        case when survey_meets_min_sample then survey_satisfied_answers else patients_satisfied end
            as satisfaction_satisfied,
        case when survey_meets_min_sample then survey_answers else patients_surveyed end as satisfaction_sample
    from joined
)

select
    vendor_id || '|' || to_char(month, 'YYYY-MM') as vendor_month_id,
    vendor_id,
    month,
    month_end,
    is_closed_month,
    service_type,
    risk_tier,
    lab_qc_runs,
    lab_qc_runs_accurate,
    {{ safe_ratio('lab_qc_runs_accurate', 'lab_qc_runs') }} as lab_accuracy,
    reports_received,
    reports_due,
    reports_on_time,
    {{ safe_ratio('reports_on_time', 'reports_due') }} as report_timeliness,
    {{ safe_ratio('reports_due - reports_on_time', 'reports_due') }} as report_delay_rate,
    deliveries,
    deliveries_late,
    {{ safe_ratio('deliveries_late', 'deliveries') }} as delivery_delay_rate,
    cold_chain_readings,
    cold_chain_readings_in_range,
    {{ safe_ratio('cold_chain_readings_in_range', 'cold_chain_readings') }} as cold_chain_compliance,
    cold_chain_excursions,
    cold_chain_max_excursion_c,
    staff_headcount_start,
    staff_leavers,
    staff_active_end,
    {{ safe_ratio('staff_leavers', 'staff_headcount_start') }} as staff_turnover_rate,
    {{ safe_ratio('staff_certified', 'staff_active_end') }} as staff_certified_share,
    {{ safe_ratio('staff_trained_on_pace', 'staff_active_end') }} as staff_trained_share,
    inspections,
    inspection_items_checked,
    inspection_items_passed,
    {{ safe_ratio('inspection_items_passed', 'inspection_items_checked') }} as spot_check_pass_rate,
    incidents,
    privacy_leak_incidents,
    medical_accident_incidents,
    fake_qualification_incidents,
    service_report_revision,
    service_volume,
    service_volume_mom_growth,
    complaints,
    patients_surveyed,
    patients_satisfied,
    {{ safe_ratio('patients_satisfied', 'patients_surveyed') }} as self_reported_satisfaction_rate,
    survey_questionnaires,
    survey_answers,
    survey_satisfied_answers,
    survey_satisfaction_rate,
    survey_meets_min_sample,
    satisfaction_basis,
    satisfaction_satisfied,
    satisfaction_sample,
    {{ safe_ratio('satisfaction_satisfied', 'satisfaction_sample') }} as satisfaction_rate,
    price_deviation_item_code,
    price_deviation_max,
    {{ business_date() }} as built_on
from satisfaction_chosen
