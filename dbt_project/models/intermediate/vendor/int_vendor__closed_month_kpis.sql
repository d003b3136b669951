-- The vendor KPI months that are closed 已月结 on the business date (the month ended and the close
-- day of the following month has passed): what the snapshot snp_vendor_month_kpis_closed keeps
-- versions of, so a correction after closing becomes a new version instead of an edit.
-- every column of the mart: the snapshot versions them all
select *  -- noqa: AM04
from {{ ref('fct_vendor_month_kpis') }}
where (month + interval '1 month' + interval '{{ var("month_close_day") - 1 }} days')::date <= {{ business_date() }}
