{% macro source_system_name(column) %}
    {#- A source system's code → its Chinese and English name, where a data-team chart shows it. -#}
    case {{ column }}
        when 'his' then '医院信息系统 HIS'
        when 'his_fhir' then '医院信息系统（FHIR） HIS via FHIR'
        when 'insurance' then '医保结算 Insurance settlements'
        when 'survey' then '满意度调查 Satisfaction surveys'
        when 'referral' then '转诊渠道 Referral channels'
        when 'vendor' then '第三方服务商 Vendors'
        else {{ column }}
    end
{% endmacro %}
