"""Medical insurance 医保: the settlement files of the medical-insurance platform and its DRG catalogue.

A night's drop folder `<inbox>/insurance/<YYYY-MM-DD>/` holds what the platform sent that business day:

- `settlement_<YYYY-MM-DD>.csv`: the inpatient cases settled that day 结算清单, one row per case, with
  the CHS-DRG group the platform assigned, its relative weight RW, the DIP disease group and points,
  what the fund paid the hospital, the patient's own share and the case's total medical cost. Files
  come in UTF-8 or GBK (GB18030) and carry the usual defects (see `hospital_ops_sim/insurance.py`).
- `drg_catalogue_<version>.csv`: the group catalogue 分组方案 with its weights, one file per version
  (e.g. `CHS-DRG-1.1-2026`), delivered before the first settlement it applies to.

Conventions
- `drg_code` is a CHS-DRG code: MDC letter + two characters (together the ADRG) + a final digit, 1 with
  major complications or comorbidities (MCC), 3 with complications (CC), 5 without, 9 not split
  (shape `^[A-Z][A-Z0-9]{2}[1359]$`). The loader cannot check the shape (a `Column` has no pattern):
  it is left to the quality suite, see the module's tests.
- `relative_weight` RW = the group's mean case cost / the mean cost of all cases of the catalogue's
  reference population; CMI = Σ RW / cases. `dip_points` = RW × 100 (DIP 病种分值 on the same scale:
  the average case is worth 100 points); the DIP payment would be points × point value.
- Money is CNY. `insurer_payment_cny` is what the fund 统筹基金 pays the hospital for the case,
  `patient_copay_cny` what the patient paid (自付), `case_cost_cny` the case's total medical cost
  (医疗总费用). The hospital's DRG revenue for the case is insurer payment + copay, so the case's
  profit or loss under DRG is `insurer_payment_cny + patient_copay_cny - case_cost_cny`.
- `insurance_type` is `employee` (城镇职工医保) or `resident` (城乡居民医保).
- `los_days` is 实际住院天数: discharge date − admission date, a same-day stay counting 1.
- `stay_id` is the HIS inpatient stay the case settles: the join key to `his.inpatient_stays`. It is
  not a `references` check (a different source): a share of settlements does not join, and the
  marts must report that share, never drop it.

Catalogue versions
The business key of the catalogue is (catalogue_version, drg_code): a new year's catalogue is a new
version with new rows and never rewrites an earlier version's weights; a re-sent version replaces only
its own rows (staging keeps the latest row per key). The version in force for a settlement is the
catalogue with the greatest `effective_year` ≤ the year of `settled_on`:

    select s.*, c.catalogue_version, c.relative_weight as catalogue_rw
    from settlements s
    join lateral (select * from drg_catalogue c
                  where c.drg_code = s.drg_code and c.effective_year <= extract(year from s.settled_on)
                  order by c.effective_year desc limit 1) c on true

A settlement's own `relative_weight` is what the platform paid on and is what CMI and payment use;
the catalogue is the reference that explains it. `drg_code` references the catalogue at landing (the
code must exist in some version already landed, which the catalogue's lower `load_order` ensures for
a night that delivers both); the version-exact check is the join above, tested downstream.
"""

from __future__ import annotations

from hospital_ops.sources.spec import Column as C
from hospital_ops.sources.spec import Entity, RowRule, Source

SOURCE_NAME = "insurance"

INSURANCE_TYPES = ("employee", "resident")  # 城镇职工 / 城乡居民
DRG_CODE_PATTERN = r"^[A-Z][A-Z0-9]{2}[1359]$"  # for the quality suite; the loader has no pattern check
CATALOGUE_REF = ("drg_catalogue", "drg_code")

_MONEY_MAX = 1e8  # a plausibility bound for one case, not a business rule
_RW_MAX = 100  # the heaviest real groups (transplants, ECMO) weigh some tens
_LOS_MAX = 3650

SOURCE = Source(
    name=SOURCE_NAME,
    description="Medical-insurance platform 医保: daily DRG/DIP settlement files and the versioned DRG catalogue",
    entities=(
        Entity(
            source=SOURCE_NAME, name="drg_catalogue", file_pattern="drg_catalogue_*.csv", load_order=0,
            description="CHS-DRG group catalogue 分组方案 with relative weights, one file per version (year)",
            business_key=("catalogue_version", "drg_code"),
            columns=(
                C("catalogue_version", required=True),  # e.g. CHS-DRG-1.1-2026
                C("effective_year", "int", required=True, min=2000, max=2100),
                C("drg_code", required=True),
                C("drg_name", required=True),
                C("mdc", required=True),  # major diagnostic category: drg_code's first letter
                C("adrg", required=True),  # adjacent DRG: drg_code's first three characters
                C("relative_weight", "decimal", required=True, min=0, max=_RW_MAX),
                C("base_rate_cny", "decimal", min=0, max=_MONEY_MAX),  # 费率 per RW, when one rate applies to all
            ),
        ),
        Entity(
            source=SOURCE_NAME, name="settlements", file_pattern="settlement_*.csv", load_order=1,
            description="Inpatient DRG/DIP settlements 住院结算清单: one row per settled case, per settlement day",
            business_key=("case_id",),
            columns=(
                C("case_id", required=True),
                C("stay_id", required=True),  # the HIS inpatient stay: join key, not checked at landing
                C("hospital_id", required=True),
                C("insurance_type", required=True, allowed=INSURANCE_TYPES),
                C("settled_on", "date", required=True),
                C("discharge_date", "date", required=True),
                C("drg_code", required=True, references=CATALOGUE_REF),
                C("drg_name"),
                C("relative_weight", "decimal", required=True, min=0, max=_RW_MAX),
                C("dip_group"),  # DIP 病种: ICD-10 of the primary diagnosis[:procedure code]
                C("dip_points", "decimal", min=0, max=_RW_MAX * 100),
                C("insurer_payment_cny", "decimal", required=True, min=0, max=_MONEY_MAX),
                C("patient_copay_cny", "decimal", required=True, min=0, max=_MONEY_MAX),
                C("case_cost_cny", "decimal", required=True, min=0, max=_MONEY_MAX),
                C("los_days", "int", required=True, min=1, max=_LOS_MAX),
            ),
            row_rules=(RowRule("settled_on", ">=", "discharge_date", "a case is settled after discharge"),),
        ),
    ),
)
