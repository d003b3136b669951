-- FHIR money by currency 按币种金额, per month (hospital time), resource type and kind: what Claims,
-- ExplanationOfBenefits and ChargeItems stated, never converted. The ledger's CNY revenue takes the CNY
-- ChargeItems only (as HIS charges); every other currency is shown here.
with amounts as (
    select
        *,
        date_trunc('month', occurred_at)::date as month_start
    from {{ ref('stg_his_fhir__amounts') }}
)

select
    concat_ws('|', month_start, resource_type, kind, currency) as row_key,
    month_start,
    resource_type,
    kind,
    currency,
    count(*) as items,
    sum(amount) as amount,
    currency = 'CNY' as in_ledger_currency
from amounts
group by month_start, resource_type, kind, currency
