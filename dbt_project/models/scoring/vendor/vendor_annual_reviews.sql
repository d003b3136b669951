-- Annual re-review 年度复审 and admission 准入, one row per vendor per calendar year it is rated in.
-- The year's re-review is the credit rating of its December (vendor_credit_rating); it passes when
-- the rating's band passes (seed credit_rating_bands.passes_annual_review). A year whose December is
-- not rated yet is pending. From the reviews:
--   admission_decision          admission_revoked 取消准入 after var failed_re_reviews_to_revoke
--                               consecutive failed re-reviews; otherwise none
--   simplified_admission        eligible 简化准入 after var aaa_years_for_simplified_admission
--                               consecutive AAA years; not_yet_decidable 尚无法判定 while fewer years
--                               have been reviewed and all of them were AAA; otherwise not_eligible
with ratings as (
    select * from {{ ref('vendor_credit_rating') }}
),

bands as (
    select * from {{ ref('credit_rating_bands') }}
),

years as (
    select
        ratings.vendor_id,
        extract(year from ratings.rating_month)::int as review_year,
        max(ratings.credit_rating) filter (where extract(month from ratings.rating_month) = 12) as annual_rating,
        max(ratings.vendor_rating_id) filter (where extract(month from ratings.rating_month) = 12)
            as annual_rating_id
    from ratings
    group by 1, 2
),

reviews as (
    select
        years.*,
        years.annual_rating is not null as is_reviewed,
        bands.passes_annual_review as passed
    from years
    left join bands on years.annual_rating = bands.rating
),

streaks as (
    select
        reviews.*,
        count(*) filter (where reviews.is_reviewed) over history as years_reviewed,
        max(reviews.review_year) filter (where reviews.is_reviewed and reviews.passed) over history as last_passed_year,
        max(reviews.review_year) filter (where reviews.is_reviewed and reviews.annual_rating <> 'AAA')
            over history
            as last_non_aaa_year,
        min(reviews.review_year) filter (where reviews.is_reviewed) over history as first_reviewed_year,
        max(reviews.review_year) filter (where reviews.is_reviewed) over history as last_reviewed_year
    from reviews
    window history as (partition by vendor_id order by review_year rows between unbounded preceding and current row)
),

counted as (
    select
        streaks.*,
        -- streaks as of the latest re-review so far (a pending year carries the last reviewed year's)
        coalesce(streaks.last_reviewed_year - coalesce(streaks.last_passed_year, streaks.first_reviewed_year - 1), 0)
            as consecutive_failed_reviews,
        coalesce(streaks.last_reviewed_year - coalesce(streaks.last_non_aaa_year, streaks.first_reviewed_year - 1), 0)
            as consecutive_aaa_years
    from streaks
)

select
    vendor_id || '|' || review_year as vendor_review_id,
    vendor_id,
    review_year,
    is_reviewed,
    annual_rating,
    passed,
    consecutive_failed_reviews,
    consecutive_aaa_years,
    case
        when consecutive_failed_reviews >= {{ var('failed_re_reviews_to_revoke') }}
            then 'admission_revoked'
        else 'none'
    end as admission_decision,
    case
        when consecutive_aaa_years >= {{ var('aaa_years_for_simplified_admission') }} then 'eligible'
        when
            coalesce(years_reviewed, 0) < {{ var('aaa_years_for_simplified_admission') }}
            and consecutive_aaa_years = coalesce(years_reviewed, 0) then 'not_yet_decidable'
        else 'not_eligible'
    end as simplified_admission,
    jsonb_build_object(
        'annual_rating_id', annual_rating_id, 'years_reviewed', coalesce(years_reviewed, 0),
        'failed_re_reviews_to_revoke', {{ var('failed_re_reviews_to_revoke') }},
        'aaa_years_for_simplified_admission', {{ var('aaa_years_for_simplified_admission') }}
    ) as evidence
from counted
