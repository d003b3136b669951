-- Amounts 金额 of Claim, ExplanationOfBenefit and ChargeItem with their currency, as the source stated them.
-- Only CNY ChargeItems are HIS charges (the ledger's CNY figures); the rest is shown here, never converted.
-- One row per amount_id (resource, kind, currency): the latest version.
with current_version as (
    {{ latest_version(source('his_fhir', 'amounts'), ['amount_id'], tiebreak='updated_at desc') }}
)

select
    amount_id,
    resource_type,
    resource_id,
    encounter_id,
    patient_id,
    kind,
    amount,
    currency,
    occurred_at,
    updated_at,
    _batch_date as landed_batch_date,
    _source_file as source_file
from current_version
