"""Third-party service vendors 第三方服务商: what the hospital receives from and about them.

A night's drop folder `<inbox>/vendor/<YYYY-MM-DD>/` holds what arrived that business day:
full exports of the registers (vendor registry, contracts, qualifications, price list) when they
change, daily logs (lab QC, report turnaround, deliveries, cold-chain readings, inspections,
incidents), the monthly staff roster and one Excel service report per vendor per month, sometimes
re-sent with a correction (a higher `revision`) a night later.
"""

from __future__ import annotations

from hospital_ops.sources.spec import Column as C
from hospital_ops.sources.spec import Entity, RowRule, Source

# plausibility bounds, not business rules: a value beyond them is a broken file, not a big month
_COUNT_MAX = 10_000_000  # items, reports, patients or complaints in one row
_MONEY_MAX = 1e10  # CNY in one contract
_PRICE_MAX = 1e8  # CNY for one priced item
_MEASURE_MAX = 1e9  # a lab QC value in its unit

SERVICE_TYPES = (
    "pathology_diagnosis",
    "surgical_assistance",
    "lab_testing",
    "imaging",
    "logistics_delivery",
    "patient_guide",
    "it_services",
    "cleaning",
    "landscaping",
)
RISK_TIERS = ("high", "medium", "low")
CERTIFICATE_TYPES = ("business_licence", "iso15189", "gsp", "mlps_level3", "medical_institution_licence")
INCIDENT_TYPES = ("privacy_leak", "medical_accident", "fake_qualification", "service_disruption", "safety_hazard")
INSPECTION_TYPES = ("spot_check", "patrol")

VENDOR_REF = ("registry", "vendor_id")

SOURCE = Source(
    name="vendor",
    description="Third-party service vendors: registers, monthly reports, logs and IoT feeds",
    entities=(
        Entity(
            source="vendor", name="registry", file_pattern="vendor_registry*.csv", load_order=0,
            description="Vendor registry 服务商名录: one row per admitted vendor (full export)",
            business_key=("vendor_id",),
            columns=(
                C("vendor_id", required=True),
                C("vendor_name", required=True),
                C("service_type", required=True, allowed=SERVICE_TYPES),
                C("risk_tier", required=True, allowed=RISK_TIERS),
                C("unified_credit_code", required=True),
                C("contact_person", pii=True),
                C("contact_phone", pii=True),
                C("admitted_on", "date", required=True, dates="register"),
                C("related_party_declared", "bool"),
            ),
        ),
        Entity(
            source="vendor", name="contracts", file_pattern="contracts*.csv", load_order=1,
            description="Contract register 合同台账: SLA targets and term per contract (full export)",
            business_key=("contract_id",),
            columns=(
                C("contract_id", required=True),
                C("vendor_id", required=True, references=VENDOR_REF),
                C("hospital_id", required=True),
                C("service_type", required=True, allowed=SERVICE_TYPES),
                C("start_date", "date", required=True, dates="register"),
                C("end_date", "date", required=True, dates="term"),
                C("sla_lab_accuracy_min", "decimal", min=0, max=1),
                C("sla_report_on_time_min", "decimal", min=0, max=1),
                C("sla_delivery_on_time_min", "decimal", min=0, max=1),
                C("annual_value_cny", "decimal", min=0, max=_MONEY_MAX),
            ),
            row_rules=(RowRule("end_date", ">=", "start_date", "a contract ends after it starts"),),
        ),
        Entity(
            source="vendor", name="qualifications", file_pattern="qualifications*.csv", load_order=1,
            description="Qualifications and certificates 资质证书 with expiry (full export)",
            business_key=("certificate_no",),
            columns=(
                C("certificate_no", required=True),
                C("vendor_id", required=True, references=VENDOR_REF),
                C("certificate_type", required=True, allowed=CERTIFICATE_TYPES),
                C("issued_on", "date", required=True, dates="register"),
                C("expires_on", "date", required=True, dates="term"),
            ),
            row_rules=(RowRule("expires_on", ">=", "issued_on", "a certificate expires after it is issued"),),
        ),
        Entity(
            source="vendor", name="price_list", file_pattern="price_list*.csv", load_order=1,
            description="Contracted unit prices 服务价格 against public-hospital reference prices (full export)",
            business_key=("vendor_id", "item_code", "effective_from"),
            columns=(
                C("vendor_id", required=True, references=VENDOR_REF),
                C("item_code", required=True),
                C("item_name", required=True),
                C("unit_price_cny", "decimal", required=True, min=0, max=_PRICE_MAX),
                C("reference_price_cny", "decimal", required=True, min=0, max=_PRICE_MAX),
                C("effective_from", "date", required=True, dates="register"),
            ),
        ),
        Entity(
            source="vendor", name="service_reports", file_pattern="service_report_*.xlsx",
            file_format="xlsx", sheet="月度服务报告", load_order=2,
            description="Monthly service report 月度服务报告 submitted by each vendor as an Excel workbook",
            business_key=("vendor_id", "period"),
            columns=(
                C("vendor_id", required=True, references=VENDOR_REF),
                C("period", "month", required=True),
                C("revision", "int", required=True, min=1, max=99),
                C("submitted_on", "date", required=True),
                C("service_volume", "int", required=True, min=0, max=_COUNT_MAX),
                C("complaints_received", "int", required=True, min=0, max=_COUNT_MAX),
                C("patients_surveyed", "int", min=0, max=_COUNT_MAX),
                C("patients_satisfied", "int", min=0, max=_COUNT_MAX),
            ),
            row_rules=(RowRule("patients_satisfied", "<=", "patients_surveyed",
                               "satisfied patients are among those surveyed"),),
        ),
        Entity(
            source="vendor", name="lab_qc_results", file_pattern="lab_qc_results*.csv", load_order=2,
            description="Lab quality-control runs 室内质控: measured vs expected value of control samples",
            business_key=("qc_run_id",),
            columns=(
                C("qc_run_id", required=True),
                C("vendor_id", required=True, references=VENDOR_REF),
                C("run_at", "timestamp", required=True),
                C("analyte", required=True),
                C("expected_value", "decimal", required=True, min=-_MEASURE_MAX, max=_MEASURE_MAX),
                C("measured_value", "decimal", required=True, min=-_MEASURE_MAX, max=_MEASURE_MAX),
                C("allowed_deviation_pct", "decimal", required=True, min=0, max=100),
            ),
        ),
        Entity(
            source="vendor", name="report_turnaround", file_pattern="report_turnaround*.csv", load_order=2,
            description="Report turnaround log 报告周转: specimen received → report issued, against the promise",
            business_key=("report_id",),
            columns=(
                C("report_id", required=True),
                C("vendor_id", required=True, references=VENDOR_REF),
                C("received_at", "timestamp", required=True),
                C("issued_at", "timestamp"),
                C("promised_hours", "decimal", required=True, min=0, max=24 * 366),
            ),
            row_rules=(RowRule("issued_at", ">=", "received_at", "a report is issued after its specimen is received"),),
        ),
        Entity(
            source="vendor", name="deliveries", file_pattern="deliveries*.csv", load_order=2,
            description="Delivery log 配送记录: promised vs actual delivery time",
            business_key=("delivery_id",),
            columns=(
                C("delivery_id", required=True),
                C("vendor_id", required=True, references=VENDOR_REF),
                C("hospital_id", required=True),
                C("item_category", required=True),
                C("promised_at", "timestamp", required=True),
                C("delivered_at", "timestamp"),
            ),
        ),
        Entity(
            source="vendor", name="cold_chain_readings", file_pattern="cold_chain_readings*.csv", load_order=2,
            description="Cold-chain temperature readings 冷链温度 from IoT loggers, several per hour per device",
            business_key=("device_id", "reading_at"),
            columns=(
                C("device_id", required=True),
                C("vendor_id", required=True, references=VENDOR_REF),
                C("reading_at", "timestamp", required=True),
                # a logger cannot read outside -40..60 °C: anything else (e.g. 999) is a sensor fault
                C("temperature_c", "decimal", required=True, min=-40, max=60),
            ),
        ),
        Entity(
            source="vendor", name="staff_roster", file_pattern="staff_roster*.csv", load_order=2,
            description="Vendor staff roster 人员花名册 (monthly full export, leavers kept with their leaving date)",
            business_key=("staff_id",),
            columns=(
                C("staff_id", required=True),
                C("vendor_id", required=True, references=VENDOR_REF),
                C("staff_name", pii=True),
                C("national_id", pii=True),
                C("phone", pii=True),
                C("role", required=True),
                C("certified", "bool", required=True),
                C("training_hours_ytd", "decimal", required=True, min=0, max=2000),
                C("joined_on", "date", required=True, dates="register"),
                C("left_on", "date", dates="register"),
            ),
            row_rules=(RowRule("left_on", ">=", "joined_on", "a leaver leaves after joining"),),
        ),
        Entity(
            source="vendor", name="inspections", file_pattern="inspections*.csv", load_order=2,
            description="Spot checks and patrols 抽查/巡查 by the hospital's supervisors",
            business_key=("inspection_id",),
            columns=(
                C("inspection_id", required=True),
                C("vendor_id", required=True, references=VENDOR_REF),
                C("inspected_on", "date", required=True),
                C("inspection_type", required=True, allowed=INSPECTION_TYPES),
                C("items_checked", "int", required=True, min=0, max=_COUNT_MAX),
                C("items_passed", "int", required=True, min=0, max=_COUNT_MAX),
            ),
            row_rules=(RowRule("items_passed", "<=", "items_checked", "passed items are among the items checked"),),
        ),
        Entity(
            source="vendor", name="incidents", file_pattern="incidents*.csv", load_order=2,
            description="Incidents 不良事件: privacy leaks, medical accidents, fake qualifications, …",
            business_key=("incident_id",),
            columns=(
                C("incident_id", required=True),
                C("vendor_id", required=True, references=VENDOR_REF),
                C("occurred_on", "date", required=True),
                C("incident_type", required=True, allowed=INCIDENT_TYPES),
                C("description"),
            ),
        ),
    ),
)
