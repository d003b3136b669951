-- The ledger months that are closed 已月结 on the business date (the close day of the following
-- month has passed): what snp_department_month_ledger_closed keeps versions of, so a late
-- correction after closing becomes a new version, never an edit of what was published.
select *
from {{ ref('fct_department_month_ledger') }}
where (month + interval '1 month' + interval '{{ var("month_close_day") - 1 }} days')::date <= {{ business_date() }}
