{#- Referral measures 转诊指标 over int_referral__visit_matches joined to stg_referral__referrals,
    defined once for the monthly and quarterly channel marts. `visits` is the visit matches' alias,
    `referrals` the referrals alias.
    Visit conversion rate 就诊转化率 = converted / evaluable, where evaluable = converted referrals plus
    those whose window closed without a visit (a referral whose window is still open and has not
    converted yet may still convert, so it is not counted either way). -#}
{% macro referral_measures(visits='visits', referrals='referrals') -%}
    count(*) as referrals,
    count(*) filter (where {{ visits }}.is_converted or {{ visits }}.is_window_closed) as referrals_evaluable,
    count(*) filter (where {{ visits }}.is_converted) as referrals_converted,
    {{ safe_ratio('count(*) filter (where ' ~ visits ~ '.is_converted)',
                  'count(*) filter (where ' ~ visits ~ '.is_converted or ' ~ visits ~ '.is_window_closed)') }}
        as conversion_rate,
    count({{ referrals }}.response_minutes) as referrals_contacted,
    percentile_cont(0.5) within group (order by {{ referrals }}.response_minutes) as median_response_minutes,
    avg({{ referrals }}.response_minutes)::numeric as mean_response_minutes
{%- endmacro %}
