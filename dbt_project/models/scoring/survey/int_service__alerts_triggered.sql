{{ config(materialized='view', schema='intermediate', tags=['scoring']) }}
-- Service alerts that tonight's data triggers 当期触发的服务预警, one row per alert identity
-- (type, subject, period), with the indicator, its baseline, the threshold and the evidence:
--   satisfaction_drop   a department's closed month: satisfaction rate below the mean of its previous
--                       var satisfaction_trailing_months months by more than var satisfaction_drop_points
--                       percentage points; the month and the trailing months each meet var
--                       survey_min_sample_for_ranking questionnaires (months below it are left out)
--   complaint_spike     a department's closed month: complaints above var complaint_spike_factor × the
--                       mean of its previous var complaint_trailing_months months (months without a
--                       complaint count as 0, but only months inside the survey platform's history,
--                       and all of them: a shorter baseline is no baseline), and at least
--                       var complaint_spike_min_count complaints
-- Comparisons are exact (on sums, never on a rounded mean): a value at its threshold does not fire.
--   channel_downgrade   a channel's quarter graded worse than the quarter before (channel_quarter_grades;
--                       a quarter in progress counts, and its alert clears if the quarter recovers)
with satisfaction as (
    select * from {{ ref('fct_satisfaction_month') }}
),

complaints as (
    select * from {{ ref('fct_complaints_month') }}
),

channel_grades as (
    select * from {{ ref('channel_quarter_grades') }}
),

survey_history as (
    -- the survey platform's first month with data: earlier ledger months show 0 complaints only
    -- because there was no platform yet
    select least(
        (select min(month) from satisfaction),
        (
            select min(month) from complaints
            where complaints > 0
        )
    ) as first_month
),

satisfaction_trailing as (
    select
        current_month.department_id,
        current_month.hospital_id,
        current_month.month,
        current_month.satisfaction_rate,
        current_month.questionnaires,
        count(earlier.month) as trailing_months,
        sum(earlier.questionnaires) as trailing_questionnaires,
        sum(earlier.satisfaction_rate) as trailing_rate_sum,
        trim_scale(avg(earlier.satisfaction_rate)) as trailing_mean,
        jsonb_object_agg(to_char(earlier.month, 'YYYY-MM'), earlier.satisfaction_rate) as trailing_rates
    from satisfaction as current_month
    inner join satisfaction as earlier
        on
            current_month.department_id = earlier.department_id
            and earlier.meets_min_sample
            and current_month.month > earlier.month
            and earlier.month >= current_month.month - interval '{{ var("satisfaction_trailing_months") }} months'
    where
        current_month.meets_min_sample
        and current_month.month < date_trunc('month', {{ business_date() }})
    group by 1, 2, 3, 4, 5
),

satisfaction_drop as (
    select
        md5('satisfaction_drop|' || department_id || '|' || month::text) as alert_id,
        'satisfaction_drop' as alert_type,
        'department' as subject_type,
        department_id as subject_id,
        hospital_id,
        month as period_start,
        to_char(month, 'YYYY-MM') as period_label,
        'satisfaction_rate' as indicator,
        satisfaction_rate as observed_value,
        trailing_mean as baseline_value,
        {{ var('satisfaction_drop_points') }}::numeric as threshold,
        jsonb_build_object(
            'satisfaction_rate', satisfaction_rate, 'questionnaires', questionnaires,
            'trailing_mean', trailing_mean, 'trailing_months', trailing_months,
            'trailing_questionnaires', trailing_questionnaires, 'trailing_rates', trailing_rates,
            'drop_points', round(100 * (trailing_mean - satisfaction_rate), 2),
            'drop_points_threshold', {{ var('satisfaction_drop_points') }},
            'min_sample', {{ var('survey_min_sample_for_ranking') }},
            'period', to_char(month, 'YYYY-MM')
        ) as evidence
    from satisfaction_trailing
    where
        100 * (trailing_rate_sum - trailing_months * satisfaction_rate)
        > {{ var('satisfaction_drop_points') }} * trailing_months
),

complaint_trailing as (
    select
        current_month.department_id,
        current_month.hospital_id,
        current_month.month,
        current_month.complaints,
        current_month.complaints_per_10k_visits,
        count(earlier.month) as trailing_months,
        sum(earlier.complaints) as trailing_total,
        trim_scale(avg(earlier.complaints)) as trailing_mean,
        jsonb_object_agg(to_char(earlier.month, 'YYYY-MM'), earlier.complaints) as trailing_counts
    from complaints as current_month
    cross join survey_history
    inner join complaints as earlier
        on
            current_month.department_id = earlier.department_id
            and current_month.month > earlier.month
            and earlier.month >= current_month.month - interval '{{ var("complaint_trailing_months") }} months'
            and survey_history.first_month <= earlier.month
    where current_month.month < date_trunc('month', {{ business_date() }})
    group by 1, 2, 3, 4, 5
    having count(earlier.month) = {{ var('complaint_trailing_months') }}
),

complaint_spike as (
    select
        md5('complaint_spike|' || department_id || '|' || month::text) as alert_id,
        'complaint_spike' as alert_type,
        'department' as subject_type,
        department_id as subject_id,
        hospital_id,
        month as period_start,
        to_char(month, 'YYYY-MM') as period_label,
        'complaints' as indicator,
        complaints::numeric as observed_value,
        trailing_mean as baseline_value,
        {{ var('complaint_spike_factor') }}::numeric as threshold,
        jsonb_build_object(
            'complaints', complaints, 'complaints_per_10k_visits', complaints_per_10k_visits,
            'trailing_mean', trailing_mean, 'trailing_months', trailing_months,
            'trailing_counts', trailing_counts,
            'factor', {{ var('complaint_spike_factor') }},
            'min_count', {{ var('complaint_spike_min_count') }},
            'period', to_char(month, 'YYYY-MM')
        ) as evidence
    from complaint_trailing
    where
        complaints >= {{ var('complaint_spike_min_count') }}
        and complaints * trailing_months > {{ var('complaint_spike_factor') }} * trailing_total
),

channel_downgrade as (
    select
        md5('channel_downgrade|' || channel_id || '|' || quarter::text) as alert_id,
        'channel_downgrade' as alert_type,
        'channel' as subject_type,
        channel_id as subject_id,
        null::text as hospital_id,
        quarter as period_start,
        quarter_label as period_label,
        'channel_grade' as indicator,
        total_score as observed_value,
        null::numeric as baseline_value,
        null::numeric as threshold,
        evidence || jsonb_build_object(
            'grade', grade, 'previous_grade', previous_grade, 'previous_quarter', previous_quarter_label,
            'total_score', total_score, 'conversion_rate', conversion_rate,
            'is_quarter_closed', is_quarter_closed, 'period', quarter_label
        ) as evidence
    from channel_grades
    where is_downgrade
)

select * from satisfaction_drop
union all
select * from complaint_spike
union all
select * from channel_downgrade
