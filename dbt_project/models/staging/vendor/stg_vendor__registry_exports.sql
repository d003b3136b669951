-- Every vendor-registry export as delivered (not only the current version), one row per vendor
-- per export: when an attribute changed (e.g. a related party was declared) is read from here.
select distinct on (vendor_id, split_part(_source_file, '/', 2)::date)
    vendor_id,
    related_party_declared,
    split_part(_source_file, '/', 2)::date as delivered_on,
    _source_file as source_file
from {{ source('vendor', 'registry') }}
where {{ not_held(source('vendor', 'registry')) }}
order by vendor_id asc, split_part(_source_file, '/', 2)::date, _batch_date desc, _row_number desc
