-- Vendor credit rating 信用评价 (AAA, AA, A, B, C), one row per vendor per closed month, over the
-- trailing window of closed months. Three components, each 0–100, weighted by seed
-- credit_rating_weights; the score maps to a rating through credit_rating_bands. Any red warning
-- in the window caps the rating at C (C exits; B and below must rectify by a deadline).
--   qualification    100, less 40 per certificate expired at month end; 0 on a fake qualification
--   service_quality  share of months in the window meeting every applicable service standard
--   credit_record    100 less the penalty of each warning in the window (by colour)
with kpis as (
    select * from {{ ref('fct_vendor_month_kpis') }}
    where is_closed_month
),

standards as (
    select * from {{ ref('vendor_service_standards') }}
),

warnings as (
    select * from {{ ref('vendor_risk_warnings') }}
),

penalties as (
    select * from {{ ref('warning_colour_penalties') }}
),

certificates as (
    select * from {{ ref('stg_vendor__qualifications') }}
),

rating_months as (
    select vendor_id, month, month_end from kpis
),

window_months as (
    select
        rating_months.month as rating_month,
        kpis.*
    from rating_months
    inner join kpis
        on kpis.vendor_id = rating_months.vendor_id
        and kpis.month > rating_months.month - interval '{{ var("credit_rating_window_months") }} months'
        and kpis.month <= rating_months.month
),

month_meets_standards as (
    select
        window_months.vendor_id,
        window_months.rating_month,
        window_months.month,
        bool_and(
            case standards.metric
                when 'lab_accuracy' then window_months.lab_accuracy >= standards.standard
                when 'report_timeliness' then window_months.report_timeliness >= standards.standard
                when 'delivery_delay_rate' then window_months.delivery_delay_rate <= standards.standard
                when 'cold_chain_compliance' then window_months.cold_chain_compliance >= standards.standard
                when 'spot_check_pass_rate' then window_months.spot_check_pass_rate >= standards.standard
                when 'satisfaction_rate' then window_months.satisfaction_rate >= standards.standard
            end
        ) filter (where case standards.metric
                when 'lab_accuracy' then window_months.lab_accuracy
                when 'report_timeliness' then window_months.report_timeliness
                when 'delivery_delay_rate' then window_months.delivery_delay_rate
                when 'cold_chain_compliance' then window_months.cold_chain_compliance
                when 'spot_check_pass_rate' then window_months.spot_check_pass_rate
                when 'satisfaction_rate' then window_months.satisfaction_rate
            end is not null) as meets_standards
    from window_months
    cross join standards
    group by 1, 2, 3
),

service_quality as (
    select
        vendor_id,
        rating_month,
        count(*) as months_evaluated,
        count(*) filter (where coalesce(meets_standards, true)) as months_meeting_standards
    from month_meets_standards
    group by 1, 2
),

warnings_in_window as (
    select
        rating_months.vendor_id,
        rating_months.month as rating_month,
        count(*) filter (where warnings.colour = 'blue') as blue_warnings,
        count(*) filter (where warnings.colour = 'yellow') as yellow_warnings,
        count(*) filter (where warnings.colour = 'red') as red_warnings,
        coalesce(sum(penalties.credit_penalty), 0) as credit_penalty
    from rating_months
    left join warnings
        on warnings.vendor_id = rating_months.vendor_id
        and warnings.resolution is distinct from 'condition_cleared'  -- closed warnings stay on the record
        and warnings.period_month > rating_months.month - interval '{{ var("credit_rating_window_months") }} months'
        and warnings.period_month <= rating_months.month
    left join penalties on penalties.colour = warnings.colour
    group by 1, 2
),

qualifications as (
    select
        rating_months.vendor_id,
        rating_months.month as rating_month,
        count(certs.certificate_no) filter (where certs.expires_on < rating_months.month_end) as certificates_expired,
        count(certs.certificate_no) as certificates
    from rating_months
    left join certificates as certs
        on certs.vendor_id = rating_months.vendor_id and certs.issued_on <= rating_months.month_end
    group by 1, 2
),

fake_qualifications as (
    select
        rating_months.vendor_id,
        rating_months.month as rating_month,
        coalesce(sum(kpis.fake_qualification_incidents), 0) as fake_qualification_incidents
    from rating_months
    left join kpis
        on kpis.vendor_id = rating_months.vendor_id
        and kpis.month <= rating_months.month
    group by 1, 2
),

components as (
    select
        rating_months.vendor_id,
        rating_months.month as rating_month,
        case
            when fake.fake_qualification_incidents > 0 then 0
            else greatest(0, 100 - 40 * qual.certificates_expired)
        end::numeric as qualification_score,
        round(100.0 * quality.months_meeting_standards / nullif(quality.months_evaluated, 0), 1) as service_quality_score,
        greatest(0, 100 - warned.credit_penalty)::numeric as credit_record_score,
        quality.months_evaluated,
        quality.months_meeting_standards,
        qual.certificates,
        qual.certificates_expired,
        fake.fake_qualification_incidents,
        warned.blue_warnings,
        warned.yellow_warnings,
        warned.red_warnings
    from rating_months
    inner join service_quality as quality
        on quality.vendor_id = rating_months.vendor_id and quality.rating_month = rating_months.month
    inner join warnings_in_window as warned
        on warned.vendor_id = rating_months.vendor_id and warned.rating_month = rating_months.month
    inner join qualifications as qual
        on qual.vendor_id = rating_months.vendor_id and qual.rating_month = rating_months.month
    inner join fake_qualifications as fake
        on fake.vendor_id = rating_months.vendor_id and fake.rating_month = rating_months.month
),

weights as (
    select
        max(weight) filter (where component = 'qualification') as qualification,
        max(weight) filter (where component = 'service_quality') as service_quality,
        max(weight) filter (where component = 'credit_record') as credit_record
    from {{ ref('credit_rating_weights') }}
),

scored as (
    select
        components.*,
        round((
            weights.qualification * components.qualification_score
            + weights.service_quality * coalesce(components.service_quality_score, 100)
            + weights.credit_record * components.credit_record_score
        )::numeric, 1) as total_score,
        jsonb_build_object(
            'qualification', weights.qualification,
            'service_quality', weights.service_quality,
            'credit_record', weights.credit_record
        ) as weights
    from components
    cross join weights
)

select
    scored.vendor_id || '|' || to_char(scored.rating_month, 'YYYY-MM') as vendor_rating_id,
    scored.vendor_id,
    scored.rating_month,
    scored.qualification_score,
    scored.service_quality_score,
    scored.credit_record_score,
    scored.total_score,
    case when scored.red_warnings > 0 then 'C' else bands.rating end as credit_rating,
    case when scored.red_warnings > 0 then 'red warning in window caps the rating at C' end as rating_cap_reason,
    case
        when scored.red_warnings > 0 or bands.rating = 'C' then 'exit'
        when bands.rating = 'B' then 'rectify_by_deadline'
        else 'none'
    end as consequence,
    jsonb_build_object(
        'weights', scored.weights,
        'months_evaluated', scored.months_evaluated,
        'months_meeting_standards', scored.months_meeting_standards,
        'certificates', scored.certificates,
        'certificates_expired', scored.certificates_expired,
        'fake_qualification_incidents', scored.fake_qualification_incidents,
        'warnings', jsonb_build_object('blue', scored.blue_warnings, 'yellow', scored.yellow_warnings,
                                       'red', scored.red_warnings)
    ) as evidence
from scored
inner join lateral (
    select rating
    from {{ ref('credit_rating_bands') }}
    where min_score <= scored.total_score
    order by min_score desc
    limit 1
) as bands on true
