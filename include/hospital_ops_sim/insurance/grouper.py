"""A small curated DRG grouper 分组器 for the simulated settlements: the adjacent DRGs (ADRG) of CHS-DRG
1.1 the simulated HIS's cases fall into, with their real codes and names, the MCC and CC lists, and
`assign_drg`: an operated case to the surgical ADRG of its main procedure (ICD-9-CM-3), any other to
the medical ADRG of its primary diagnosis (ICD-10), the final digit from the secondary diagnoses. A
sketch, not the national grouper (see `hospital_ops_sim.insurance.simulation`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# ==================================================================================== the grouper

# final digit → the suffix of the group's name, as the CHS-DRG catalogue words it
_SPLIT_NAMES = {1: "，伴严重并发症或合并症", 3: "，伴并发症或合并症", 5: "，不伴并发症或合并症", 9: ""}


@dataclass(frozen=True)
class Adrg:
    """An adjacent DRG 核心疾病诊断相关组: its code, name and the final digits it is split into."""

    code: str  # MDC letter + 2 characters
    name: str
    splits: tuple[int, ...]  # (9,) when not split, else a subset of (1, 3, 5) that always holds 5

    def drg_code(self, severity: int) -> str:
        """The group of a case whose secondary diagnoses reach `severity` (1 MCC, 3 CC, 5 none)."""
        if self.splits == (9,):
            return f"{self.code}9"
        preference = {1: (1, 3, 5), 3: (3, 5), 5: (5,)}[severity]
        return self.code + str(next(digit for digit in preference if digit in self.splits))

    def codes(self) -> tuple[str, ...]:
        return tuple(f"{self.code}{digit}" for digit in self.splits)

    def drg_name(self, code: str) -> str:
        return self.name + _SPLIT_NAMES[int(code[-1])]


_A = Adrg
ADRGS: dict[str, Adrg] = {a.code: a for a in (
    # MDC B nervous system
    _A("BB1", "脑创伤开颅术", (1, 3, 5)), _A("BB2", "除创伤之外的其他开颅术", (1, 5)), _A("BE2", "脑血管介入治疗", (9,)),
    _A("BR1", "颅内出血性疾患", (1, 5)), _A("BR2", "脑缺血性疾患", (1, 3, 5)), _A("BU1", "神经系统肿瘤", (1, 5)),
    _A("BU2", "神经系统变性疾患", (1, 5)), _A("BV1", "癫痫", (1, 3, 5)), _A("BY1", "颅脑损伤", (1, 3, 5)),
    _A("BZ1", "神经系统其他疾患", (1, 3, 5)),
    # MDC C eye
    _A("CB1", "玻璃体、视网膜、脉络膜手术", (9,)), _A("CB3", "晶体手术", (9,)),
    _A("CB4", "视网膜、虹膜及晶状体以外的内眼手术", (9,)), _A("CC1", "角膜、巩膜、结膜手术", (9,)),
    _A("CV1", "各种类型青光眼", (9,)), _A("CW1", "各种类型白内障", (9,)), _A("CZ1", "其他眼部疾患", (9,)),
    # MDC D ear, nose, mouth, throat
    _A("DT1", "中耳炎及上呼吸道感染", (9,)),
    # MDC E respiratory
    _A("ER1", "呼吸系统肿瘤", (3, 5)), _A("ES3", "呼吸系统感染/炎症", (1, 3, 5)), _A("ET2", "慢性气道阻塞病", (1, 3, 5)),
    _A("EX1", "哮喘及喘息性支气管炎", (3, 5)), _A("EX2", "百日咳及急性支气管炎", (3, 5)),
    _A("EZ1", "其他呼吸系统疾患", (1, 5)),
    # MDC F circulatory
    _A("FL1", "经皮心脏消融术伴房颤和/或房扑", (9,)), _A("FM1", "经皮冠状动脉支架植入", (9,)),
    _A("FM2", "其他经皮心血管治疗", (9,)), _A("FM3", "经皮心导管检查操作", (9,)), _A("FR1", "急性心肌梗死", (9,)),
    _A("FR2", "心力衰竭、休克", (1, 5)), _A("FR3", "心绞痛", (9,)), _A("FR4", "冠状动脉粥样硬化/血栓/闭塞", (1, 3, 5)),
    _A("FU2", "心律失常及传导障碍", (3, 5)), _A("FV2", "高血压", (1, 3, 5)), _A("FZ1", "其他循环系统疾患", (1, 5)),
    # MDC G digestive
    _A("GB2", "小肠、大肠（含直肠）的大手术", (9,)), _A("GD2", "阑尾切除术", (3, 5)),
    _A("GE1", "腹股沟及腹疝手术", (3, 5)), _A("GG1", "腹腔/盆腔内粘连松解术", (9,)),
    _A("GK2", "胃镜治疗操作", (3, 5)), _A("GK3", "结肠镜治疗操作", (9,)), _A("GR1", "消化系统恶性肿瘤", (1, 5)),
    _A("GS1", "胃肠出血", (1, 3, 5)), _A("GU2", "其他消化溃疡", (1, 5)), _A("GV1", "消化道梗阻或腹痛", (1, 3, 5)),
    _A("GW1", "食管炎、胃肠炎", (9,)), _A("GZ1", "其他消化系统诊断", (3, 5)),
    # MDC H hepatobiliary and pancreas
    _A("HC2", "胆囊切除手术", (9,)), _A("HS2", "肝硬化", (1, 5)), _A("HT2", "急性胰腺炎", (1, 3, 5)),
    _A("HZ2", "胆道其他疾病", (1, 5)),
    # MDC I musculoskeletal
    _A("IB3", "与脊柱有关的其他手术", (9,)), _A("IC2", "髋、肩、膝、肘和踝关节置换术", (9,)),
    _A("IC4", "除置换/翻修外的髋、肩、膝、肘、踝和足部关节其他手术", (9,)), _A("IF1", "上肢骨手术", (3, 5)),
    _A("IF3", "股骨手术", (1, 3, 5)), _A("IF4", "除股骨以外的下肢骨手术", (9,)), _A("IR2", "股骨骨折", (9,)),
    _A("IS1", "前臂、腕、手或足损伤", (9,)), _A("IS2", "除前臂、腕、手足外的损伤", (9,)),
    _A("IU1", "骨病及其他关节病", (3, 5)), _A("IU2", "颈腰背疾患", (9,)),
    _A("IZ2", "骨骼、肌肉、肌腱、结缔组织的其他疾患", (9,)),
    # MDC J skin, breast
    _A("JA2", "乳房恶性肿瘤根治性切除术", (9,)), _A("JR1", "乳房恶性肿瘤", (9,)), _A("JZ1", "其他皮肤及乳腺疾患", (9,)),
    # MDC K endocrine, nutrition, metabolism
    _A("KD2", "甲状旁腺、甲状舌管及甲状腺其他手术", (9,)), _A("KS1", "糖尿病", (1, 5)),
    _A("KT1", "内分泌、营养、代谢疾病", (3, 5)), _A("KZ1", "其他代谢疾患", (1, 3, 5)),
    # MDC L kidney and urinary tract
    _A("LA2", "膀胱肿瘤手术", (9,)), _A("LB1", "肾脏结石手术", (9,)), _A("LC1", "输尿管手术", (9,)),
    _A("LT1", "肾及尿路肿瘤", (1, 3, 5)), _A("LU1", "肾及尿路感染", (1, 3, 5)),
    _A("LX1", "尿路结石、阻塞及尿道狭窄", (9,)), _A("LZ1", "肾及泌尿系统其他疾患", (1, 5)),
    # MDC M male reproductive
    _A("MB1", "前列腺手术", (9,)), _A("MZ1", "其他男性生殖系统疾患", (9,)),
    # MDC N female reproductive
    _A("NC1", "子宫（除子宫腔内病变以外）手术", (9,)), _A("ND1", "附件手术", (9,)),
    _A("NZ1", "女性生殖系统其他疾患", (9,)),
    # MDC O pregnancy and childbirth
    _A("OB1", "剖宫产术", (9,)), _A("OE1", "异位妊娠手术", (9,)), _A("OR1", "阴道分娩", (9,)),
    _A("OT1", "异位妊娠", (9,)), _A("OZ1", "与妊娠有关的其他疾患", (9,)),
    # MDC P newborns
    _A("PU1", "足月儿", (3, 5)),
    # MDC Q blood
    _A("QS4", "其他贫血", (1, 3, 5)),
    # MDC R myeloproliferative diseases, chemotherapy
    _A("RE1", "恶性增生性疾患的化学治疗和/或其他治疗", (1, 3, 5)), _A("RT1", "非特指恶性肿瘤", (1, 5)),
    _A("RT2", "非特指良性肿瘤", (9,)),
    # MDC S infections; T mental; V injuries; X other contacts with health services
    _A("SZ1", "其他感染性或寄生虫性疾患", (3, 5)), _A("TS2", "神经症性障碍及其他情感性障碍", (9,)),
    _A("VR1", "损伤", (9,)), _A("VZ1", "其他损伤、中毒及毒性反应疾患", (1, 3, 5)),
    _A("XS1", "体征及症状", (1, 5)), _A("XT2", "非特指的先天畸形", (9,)), _A("XT3", "其他影响健康状态的因素", (3, 5)),
)}

# primary diagnosis (ICD-10) → medical ADRG, for a case without a grouping procedure
MEDICAL_ADRG: dict[str, str] = {
    "I21.0": "FR1", "I20.0": "FR3", "I50.0": "FR2", "I48.9": "FU2", "I10": "FV2", "I25.1": "FR4",
    "J18.9": "ES3", "J44.1": "ET2", "J45.9": "EX1", "C34.9": "ER1", "J20.9": "EX2", "J21.9": "EX2", "J06.9": "DT1",
    "K29.7": "GW1", "K25.9": "GU2", "K92.2": "GS1", "K74.6": "HS2", "K85.9": "HT2", "K63.5": "GZ1",
    "A09.9": "GW1", "A08.0": "GW1",
    "I63.9": "BR2", "G45.9": "BR2", "I61.9": "BR1", "G40.9": "BV1", "G20": "BU2", "D32.9": "BU1", "C71.9": "BU1",
    "S06.5": "BY1", "S06.0": "BY1",
    "E11.9": "KS1", "E04.1": "KT1", "N39.0": "LU1", "D64.9": "QS4",
    "K35.8": "GZ1", "K80.2": "HZ2", "K40.9": "GZ1", "C18.9": "GR1", "C50.9": "JR1", "K56.7": "GV1",
    "S72.0": "IR2", "M17.9": "IU1", "M16.9": "IU1", "M51.2": "IU2", "S82.1": "IS2", "S52.5": "IS1", "S42.0": "IS2",
    "O80.0": "OR1", "O82.0": "OR1", "D25.9": "NZ1", "N83.2": "NZ1", "O14.9": "OZ1", "O00.9": "OT1",
    "N20.0": "LX1", "N20.1": "LX1", "N40": "MZ1", "C67.9": "LT1",
    "H25.9": "CW1", "H40.9": "CV1", "H33.0": "CZ1", "H11.0": "CZ1",
    "Z51.1": "RE1",
}
# ICD-10 chapter letter → the chapter's "other" ADRG, for a primary diagnosis not listed above
CHAPTER_ADRG: dict[str, str] = {
    "A": "SZ1", "B": "SZ1", "C": "RT1", "D": "RT2", "E": "KZ1", "F": "TS2", "G": "BZ1", "H": "CZ1", "I": "FZ1",
    "J": "EZ1", "K": "GZ1", "L": "JZ1", "M": "IZ2", "N": "LZ1", "O": "OZ1", "P": "PU1", "Q": "XT2", "R": "XS1",
    "S": "VR1", "T": "VZ1", "Z": "XT3",
}
FALLBACK_ADRG = "XS1"
# procedure (ICD-9-CM-3) → surgical ADRG; None: not an operating-room procedure, the case stays medical
SURGICAL_ADRG: dict[str, str | None] = {
    "36.07": "FM1", "00.66": "FM2", "88.56": "FM3", "37.34": "FL1",
    "33.27": None,  # bronchoscopic biopsy
    "44.43": "GK2", "45.42": "GK3", "39.74": "BE2",
    "47.01": "GD2", "47.09": "GD2", "51.23": "HC2", "51.22": "HC2", "53.00": "GE1", "17.11": "GE1",
    "45.73": "GB2", "17.33": "GB2", "85.43": "JA2", "06.2": "KD2", "54.59": "GG1",
    "81.52": "IC2", "81.54": "IC2", "81.51": "IC2", "79.35": "IF3", "80.26": "IC4", "80.51": "IB3", "80.59": "IB3",
    "79.36": "IF4", "79.32": "IF1", "79.02": "IF1", "79.39": "IF1",
    "74.1": "OB1", "68.41": "NC1", "68.49": "NC1", "68.29": "NC1", "65.25": "ND1", "66.62": "OE1",
    "01.31": "BB1", "01.09": "BB1", "01.39": "BB2", "01.51": "BB2", "01.59": "BB2",
    "55.04": "LB1", "98.51": None,  # extracorporeal shock-wave lithotripsy
    "56.0": "LC1", "60.29": "MB1", "57.49": "LA2",
    "13.41": "CB3", "12.64": "CB4", "14.74": "CB1", "11.39": "CC1",
}
# secondary diagnoses that make a case "with MCC" / "with CC" (ICD-10 codes on the CHS-DRG 1.1 lists)
MCC_CODES = frozenset({"I26.9", "L89.9"})
CC_CODES = frozenset({"J18.9", "T81.4", "T81.0", "I80.2", "J44.9", "N18.9", "M81.9"})


@dataclass(frozen=True)
class Diagnosis:
    icd10: str
    is_primary: bool
    is_complication: bool = False


def severity(primary: str, secondaries: Iterable[str]) -> int:
    """1 with an MCC, 3 with a CC, else 5; a secondary in the primary's ICD-10 category is excluded."""
    counted = [code for code in secondaries if code[:3] != primary[:3]]
    if any(code in MCC_CODES for code in counted):
        return 1
    if any(code in CC_CODES for code in counted):
        return 3
    return 5


def medical_adrg(icd10: str) -> Adrg:
    code = MEDICAL_ADRG.get(icd10) or CHAPTER_ADRG.get(icd10[:1].upper(), FALLBACK_ADRG)
    return ADRGS[code]


def assign_drg(primary: str, secondaries: Sequence[str], procedures: Sequence[str]) -> tuple[str, str]:
    """(drg_code, drg_name) of a case: the surgical ADRG of its first grouping procedure, else the
    medical ADRG of its primary diagnosis; the final digit from its secondary diagnoses."""
    adrg = next((ADRGS[code] for code in (SURGICAL_ADRG.get(p) for p in procedures) if code), None)
    adrg = adrg or medical_adrg(primary)
    code = adrg.drg_code(severity(primary, secondaries))
    return code, adrg.drg_name(code)


def curated_codes() -> dict[str, str]:
    """Every DRG code the grouper can produce, with its name."""
    return {code: adrg.drg_name(code) for adrg in ADRGS.values() for code in adrg.codes()}


def check_grouper() -> None:
    """The curated tables are consistent (every mapping names a known ADRG, every split has a 5)."""
    problems = [f"{table}: {key} → unknown ADRG {value}"
                for table, mapping in (("MEDICAL_ADRG", MEDICAL_ADRG), ("CHAPTER_ADRG", CHAPTER_ADRG),
                                       ("SURGICAL_ADRG", SURGICAL_ADRG))
                for key, value in mapping.items() if value is not None and value not in ADRGS]
    problems += [f"ADRG {a.code}: splits {a.splits} must be (9,) or include 5" for a in ADRGS.values()
                 if not (a.splits == (9,) or (5 in a.splits and set(a.splits) <= {1, 3, 5}))]
    problems += [f"ADRG {a.code}: not MDC letter + 2 characters" for a in ADRGS.values()
                 if not re.fullmatch(r"[A-Z][A-Z0-9]{2}", a.code)]
    if problems:
        raise RuntimeError("inconsistent DRG grouper tables: " + "; ".join(problems))
