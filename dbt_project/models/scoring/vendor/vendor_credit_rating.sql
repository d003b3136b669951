-- Vendor credit rating 信用评价 (AAA, AA, A, B, C), one row per vendor per closed month, over the
-- trailing window of var credit_rating_window_months closed months. Three components, each 0–100,
-- weighted by seed credit_rating_weights; the score maps to a band through credit_rating_bands.
--   qualification    100 × certificate types in force at month end / certificate types held
--                    (issued by month end); 0 on a fake-qualification incident in the window
--   service_quality  mean over the window's months of the month's score: 100 less the standard's
--                    penalty_per_point (seed vendor_service_standards) per percentage point by which
--                    the worst-missed standard was missed (direction from the seed), floored at 0 —
--                    how far and how long a standard was missed, not a hair's breadth deciding a C
--   credit_record    100 less the penalty of each warning in the window (seed warning_colour_penalties)
-- The decisions of vendor_supervision_decisions (the one model that decides) cap the rating
-- (seed vendor_decision_rating_caps): an exit decision rates C. A score in the C band without an exit
-- decision behind it is held at B, so a C rating and its exit consequence always rest on a decision.
-- The consequence is the final rating's (seed credit_rating_bands). Scores keep full precision.
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
    select
        vendor_id,
        month,
        month_end
    from kpis
),

window_months as (
    select
        rating_months.month as rating_month,
        kpis.*
    from rating_months
    inner join kpis
        on
            rating_months.vendor_id = kpis.vendor_id
            and kpis.month > rating_months.month - interval '{{ var("credit_rating_window_months") }} months'
            and rating_months.month >= kpis.month
),

month_scores as (
    -- each standard the month has a value for: points missed and the month's score on it
    select
        window_months.vendor_id,
        window_months.rating_month,
        window_months.month,
        standards.metric,
        standards.standard,
        standards.direction,
        standards.penalty_per_point,
        (to_jsonb(window_months) ->> standards.metric)::numeric as value,
        100 * greatest(0, case standards.direction
            when 'min' then standards.standard - (to_jsonb(window_months) ->> standards.metric)::numeric
            when 'max' then (to_jsonb(window_months) ->> standards.metric)::numeric - standards.standard
        end) as points_missed
    from window_months
    cross join standards
    where (to_jsonb(window_months) ->> standards.metric) is not null
),

month_quality as (
    select
        vendor_id,
        rating_month,
        month,
        min(greatest(0, 100 - penalty_per_point * points_missed)) as month_score,
        bool_and(points_missed = 0) as meets_standards,
        jsonb_object_agg(metric, points_missed) filter (where points_missed > 0) as points_missed
    from month_scores
    group by vendor_id, rating_month, month
),

service_quality as (
    select
        vendor_id,
        rating_month,
        count(*) as months_evaluated,
        count(*) filter (where meets_standards) as months_meeting_standards,
        avg(month_score) as service_quality_score,
        jsonb_object_agg(to_char(month, 'YYYY-MM'), points_missed) filter (where not meets_standards)
            as standards_missed
    from month_quality
    group by vendor_id, rating_month
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
        on
            rating_months.vendor_id = warnings.vendor_id
            and warnings.resolution is distinct from 'condition_cleared'  -- closed warnings stay on the record
            and warnings.period_month > rating_months.month - interval '{{ var("credit_rating_window_months") }} months'
            and rating_months.month >= warnings.period_month
    left join penalties on warnings.colour = penalties.colour
    group by rating_months.vendor_id, rating_months.month
),

qualifications as (
    -- certificate types held by month end, and those with a certificate in force on the month's last day
    select
        rating_months.vendor_id,
        rating_months.month as rating_month,
        count(distinct certs.certificate_type) as certificate_types_held,
        count(distinct certs.certificate_type) filter (where certs.expires_on >= rating_months.month_end)
            as certificate_types_in_force,
        coalesce(jsonb_agg(distinct certs.certificate_type) filter (
            where certs.certificate_type is not null and not exists (
                select 1 from certificates as in_force
                where
                    in_force.vendor_id = certs.vendor_id and in_force.certificate_type = certs.certificate_type
                    and in_force.issued_on <= rating_months.month_end
                    and in_force.expires_on >= rating_months.month_end
            )
        ), '[]'::jsonb) as certificate_types_lapsed
    from rating_months
    left join certificates as certs
        on rating_months.vendor_id = certs.vendor_id and rating_months.month_end >= certs.issued_on
    group by rating_months.vendor_id, rating_months.month
),

fake_qualifications as (
    -- fake-qualification incidents inside the rating window (not over all history)
    select
        window_months.vendor_id,
        window_months.rating_month,
        coalesce(sum(window_months.fake_qualification_incidents), 0) as fake_qualification_incidents
    from window_months
    group by window_months.vendor_id, window_months.rating_month
),

components as (
    select
        rating_months.vendor_id,
        rating_months.month as rating_month,
        case
            when fake.fake_qualification_incidents > 0 then 0
            else 100.0 * qual.certificate_types_in_force / nullif(qual.certificate_types_held, 0)
        end::numeric as qualification_score,
        quality.service_quality_score,
        quality.standards_missed,
        greatest(0, 100 - warned.credit_penalty)::numeric as credit_record_score,
        quality.months_evaluated,
        quality.months_meeting_standards,
        qual.certificate_types_held,
        qual.certificate_types_in_force,
        qual.certificate_types_lapsed,
        fake.fake_qualification_incidents,
        warned.blue_warnings,
        warned.yellow_warnings,
        warned.red_warnings
    from rating_months
    left join service_quality as quality
        on rating_months.vendor_id = quality.vendor_id and rating_months.month = quality.rating_month
    inner join warnings_in_window as warned
        on rating_months.vendor_id = warned.vendor_id and rating_months.month = warned.rating_month
    inner join qualifications as qual
        on rating_months.vendor_id = qual.vendor_id and rating_months.month = qual.rating_month
    inner join fake_qualifications as fake
        on rating_months.vendor_id = fake.vendor_id and rating_months.month = fake.rating_month
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
        weights.qualification * coalesce(components.qualification_score, 0)
        + weights.service_quality * coalesce(components.service_quality_score, 100)
        + weights.credit_record * components.credit_record_score as total_score,
        jsonb_build_object(
            'qualification', weights.qualification,
            'service_quality', weights.service_quality,
            'credit_record', weights.credit_record
        ) as weights
    from components
    cross join weights
),

bands as (
    select * from {{ ref('credit_rating_bands') }}
),

decisions as (
    select * from {{ ref('vendor_supervision_decisions') }}
),

rating_caps as (
    select * from {{ ref('vendor_decision_rating_caps') }}
),

caps as (
    -- the decisions in force in the window cap the rating (strictest first)
    select
        rating_months.vendor_id,
        rating_months.month as rating_month,
        max(bands.rating_rank) as cap_rank,
        jsonb_agg(jsonb_build_object(
            'decision_id', decisions.decision_id, 'rule_id', decisions.rule_id, 'decision', decisions.decision,
            'period_month', decisions.period_month, 'rating_cap', rating_caps.rating_cap
        )
        order by bands.rating_rank desc, decisions.period_month asc, decisions.rule_id asc) as decisions
    from rating_months
    inner join decisions
        on
            rating_months.vendor_id = decisions.vendor_id
            and rating_months.month >= decisions.period_month
            and decisions.period_month
            > rating_months.month - interval '{{ var("credit_rating_window_months") }} months'
    inner join rating_caps on decisions.decision = rating_caps.decision
    inner join bands on rating_caps.rating_cap = bands.rating
    group by rating_months.vendor_id, rating_months.month
),

banded as (
    select
        scored.*,
        score_band.rating as band_rating,
        score_band.rating_rank as band_rank,
        caps.cap_rank,
        caps.decisions,
        greatest(
            -- the lowest band reached by score alone is the one above C unless a decision exits
            case
                when score_band.rating_rank = (select max(bands.rating_rank) from bands)
                    then score_band.rating_rank - 1
                else score_band.rating_rank
            end,
            coalesce(caps.cap_rank, 0)
        ) as final_rank
    from scored
    inner join lateral (
        select
            bands.rating,
            bands.rating_rank
        from bands
        where bands.min_score <= scored.total_score
        order by bands.min_score desc
        limit 1
    ) as score_band on true
    left join caps on scored.vendor_id = caps.vendor_id and scored.rating_month = caps.rating_month
)

select
    banded.vendor_id || '|' || to_char(banded.rating_month, 'YYYY-MM') as vendor_rating_id,
    banded.vendor_id,
    banded.rating_month,
    -- full precision; trim_scale drops trailing zeros only (never rounds)
    trim_scale(banded.qualification_score) as qualification_score,
    trim_scale(banded.service_quality_score) as service_quality_score,
    trim_scale(banded.credit_record_score) as credit_record_score,
    trim_scale(banded.total_score) as total_score,
    final_band.rating as credit_rating,
    case
        when banded.final_rank > banded.band_rank
            then
                'capped by decision ' || (banded.decisions -> 0 ->> 'rule_id')
                || ' (' || (banded.decisions -> 0 ->> 'decision') || ')'
        when banded.final_rank < banded.band_rank
            then 'score in band ' || banded.band_rating || ' without an exit decision: held at ' || final_band.rating
    end as rating_cap_reason,
    final_band.consequence_code as consequence,
    'score ' || round(banded.total_score, 1) || ' = ' || (banded.weights ->> 'qualification') || ' × qualification '
    || round(coalesce(banded.qualification_score, 0), 1) || ' + ' || (banded.weights ->> 'service_quality')
    || ' × service quality ' || round(coalesce(banded.service_quality_score, 100), 1) || ' + '
    || (banded.weights ->> 'credit_record') || ' × credit record ' || round(banded.credit_record_score, 1)
    || ' → band ' || banded.band_rating
    || coalesce('; decisions ' || (select
        string_agg(
            (d ->> 'rule_id') || ' ' || (d ->> 'decision') || ' → at most '
            || (d ->> 'rating_cap'), ', '
        )
    from jsonb_array_elements(banded.decisions) as d), '')
    || ' → ' || final_band.rating as rating_explanation,
    jsonb_build_object(
        'weights', banded.weights,
        'months_evaluated', banded.months_evaluated,
        'months_meeting_standards', banded.months_meeting_standards,
        'standards_missed_points', banded.standards_missed,
        'certificate_types_held', banded.certificate_types_held,
        'certificate_types_in_force', banded.certificate_types_in_force,
        'certificate_types_lapsed', banded.certificate_types_lapsed,
        'fake_qualification_incidents', banded.fake_qualification_incidents,
        'warnings', jsonb_build_object(
            'blue', banded.blue_warnings, 'yellow', banded.yellow_warnings,
            'red', banded.red_warnings
        ),
        'band_by_score', banded.band_rating,
        'decisions', coalesce(banded.decisions, '[]'::jsonb)
    ) as evidence
from banded
inner join bands as final_band on banded.final_rank = final_band.rating_rank
