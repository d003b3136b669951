{#- The ledger's ratios 台账比率, computed from its summed parts: one definition for the department and
    the hospital ledgers (a hospital's ALOS is its discharges' patient-days over its discharges, never an
    average of its departments' ALOS).
      平均住院日 ALOS = patient-days of discharges / discharges
      术前平均等待 = pre-operative wait days of surgical discharges / surgical discharges
      床位使用率 bed occupancy = occupied bed-days / open bed-days
      药占比 / 耗材占比 / 医疗服务收入占比 = drug / consumables / medical-service revenue / total revenue
      门诊次均费用 = outpatient revenue / visits;  出院次均费用 = inpatient revenue / discharges -#}
{% macro ledger_ratios() -%}
    {{ safe_ratio('discharge_patient_days', 'discharges') }} as average_length_of_stay,
    {{ safe_ratio('pre_op_wait_days_total', 'surgical_discharges') }} as average_pre_op_wait_days,
    {{ safe_ratio('patient_days', 'open_bed_days') }} as bed_occupancy,
    {{ safe_ratio('revenue_drug_cny', 'revenue_total_cny') }} as drug_ratio,
    {{ safe_ratio('revenue_consumables_cny', 'revenue_total_cny') }} as consumables_ratio,
    {{ safe_ratio('revenue_medical_service_cny', 'revenue_total_cny') }} as medical_service_share,
    {{ safe_ratio('revenue_outpatient_cny', 'outpatient_visits') }} as cost_per_outpatient_visit_cny,
    {{ safe_ratio('revenue_inpatient_cny', 'discharges') }} as cost_per_discharge_cny
{%- endmacro %}


{#- Year-on-year growth 同比增幅 of a cost: (this year − last year) / last year. -#}
{% macro yoy_growth(this_year, last_year) -%}
    {{ safe_ratio(this_year ~ ' - ' ~ last_year, last_year) }}
{%- endmacro %}
