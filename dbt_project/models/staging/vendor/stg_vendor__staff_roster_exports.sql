-- Every monthly roster export 人员花名册 as delivered (not only the current version): the export
-- arriving in a month's first days describes the vendor's staff at the end of the month before,
-- which is what staff turnover, certification and training shares for that month are built from.
with exports as (
    select
        *,
        split_part(_source_file, '/', 2)::date as delivered_on
    from {{ source('vendor', 'staff_roster') }}
    where {{ not_held(source('vendor', 'staff_roster')) }}
),

one_row_per_staff_and_export as (
    select distinct on (vendor_id, staff_id, delivered_on) *
    from exports
    order by vendor_id asc, staff_id asc, delivered_on asc, _batch_date desc, _row_number desc
)

select
    vendor_id,
    staff_id,
    role,
    certified,
    training_hours_ytd,
    joined_on,
    left_on,
    delivered_on,
    (date_trunc('month', delivered_on) - interval '1 month')::date as as_of_month,
    _source_file as source_file
from one_row_per_staff_and_export
