"""The simulated HIS's catalogues: the consortium's hospitals, the department profiles with their
case mix (real ICD-10 diagnoses and ICD-9-CM-3 procedures, lengths of stay, surgical shares,
mortality), comorbidities and complications, seasonal and weekday volume, staff titles, equipment, and
the pools fake identities are drawn from."""

from __future__ import annotations

from dataclasses import dataclass

from hospital_ops.sources.his import SENIOR_TITLE_GRADES

# ===================================================================================== catalogue


@dataclass(frozen=True)
class _Procedure:
    code: str  # ICD-9-CM-3
    name: str
    grade: int  # 手术分级 1-4
    minimally_invasive: bool
    consumables: float  # implants and disposables of the operation, CNY (mean)
    weight: float = 1.0


@dataclass(frozen=True)
class _Case:
    icd10: str
    name: str
    weight: float
    los: float  # mean length of stay, days
    surgery_share: float = 0.0
    procedures: tuple[_Procedure, ...] = ()
    mortality: float = 0.0
    planned_return: float = 0.0  # share of home discharges planning a readmission within 31 days
    emergency: bool = False
    gender: str | None = None  # GB/T 2261.1 code when the condition belongs to one sex


@dataclass(frozen=True)
class _Profile:
    code: str
    name: str
    kind: str
    beds: int = 0  # at the lead hospital, scale 1
    outpatient: float = 0.0  # visits a day at the lead hospital, scale 1
    group: str = "adult"  # who the patients are: adult, child, woman
    cases: tuple[_Case, ...] = ()
    daily_cost: tuple[float, float, float, float] = (0, 0, 0, 0)  # drug, consumables, exam_lab, service a day
    outpatient_cost: tuple[float, float] = (160, 200)  # drug, exam_lab per visit that has them
    preop_wait: tuple[int, int] = (1, 3)
    winter: bool = False  # respiratory and paediatric winter peak

    @property
    def surgical(self) -> bool:
        return any(case.procedures for case in self.cases)


_P = _Procedure
_K = _Case
CHEMOTHERAPY = _K("Z51.1", "肿瘤化学治疗疗程", 0, 3, planned_return=0.75)

_DEPARTMENTS: tuple[_Profile, ...] = (
    _Profile("CARD", "心血管内科", "clinical", 45, 50, daily_cost=(450, 150, 350, 320), outpatient_cost=(260, 300), cases=(
        _K("I21.0", "急性前壁透壁性心肌梗死", 0.12, 8, 0.85, (_P("36.07", "药物洗脱冠状动脉支架置入术", 4, True, 22000, 3),
                                                    _P("00.66", "经皮冠状动脉腔内成形术", 4, True, 9000)), 0.05,
           emergency=True),
        _K("I20.0", "不稳定性心绞痛", 0.25, 6, 0.45, (_P("36.07", "药物洗脱冠状动脉支架置入术", 4, True, 20000),
                                              _P("88.56", "冠状动脉造影术", 3, True, 2500, 2)), 0.003),
        _K("I50.0", "充血性心力衰竭", 0.2, 9, mortality=0.03),
        _K("I48.9", "心房颤动和心房扑动", 0.15, 6, 0.15, (_P("37.34", "心脏射频消融术", 4, True, 30000),), 0.002),
        _K("I10", "特发性(原发性)高血压", 0.15, 5, mortality=0.0005),
        _K("I25.1", "动脉硬化性心脏病", 0.13, 6, 0.2, (_P("88.56", "冠状动脉造影术", 3, True, 2500),), 0.003),
    )),
    _Profile("RESP", "呼吸内科", "clinical", 40, 50, winter=True, daily_cost=(600, 80, 300, 260), cases=(
        _K("J18.9", "肺炎", 0.35, 9, mortality=0.01),
        _K("J44.1", "慢性阻塞性肺病伴急性加重", 0.3, 10, mortality=0.015),
        _K("J45.9", "哮喘", 0.1, 6, mortality=0.001),
        _K("C34.9", "支气管和肺恶性肿瘤", 0.15, 10, 0.1, (_P("33.27", "经支气管镜肺活组织检查", 2, True, 800),), 0.03,
           planned_return=0.6),
        _K("J20.9", "急性支气管炎", 0.1, 5),
    )),
    _Profile("GAST", "消化内科", "clinical", 40, 45, daily_cost=(500, 90, 320, 260), cases=(
        _K("K29.7", "胃炎", 0.15, 5),
        _K("K25.9", "胃溃疡", 0.1, 7, 0.3, (_P("44.43", "内镜下胃出血控制术", 3, True, 3000),)),
        _K("K92.2", "胃肠出血", 0.15, 8, 0.4, (_P("44.43", "内镜下胃出血控制术", 3, True, 3000),), 0.02, emergency=True),
        _K("K74.6", "肝硬化", 0.15, 12, mortality=0.03),
        _K("K85.9", "急性胰腺炎", 0.15, 11, mortality=0.02, emergency=True),
        _K("K63.5", "结肠息肉", 0.3, 4, 0.9, (_P("45.42", "内镜下结肠息肉切除术", 2, True, 1500),)),
    )),
    _Profile("NEUR", "神经内科", "clinical", 45, 40, daily_cost=(550, 80, 350, 260), cases=(
        _K("I63.9", "脑梗死", 0.5, 11, 0.05, (_P("39.74", "血管内脑血栓取出术", 4, True, 60000),), 0.025, emergency=True),
        _K("I61.9", "脑内出血", 0.1, 14, mortality=0.08, emergency=True),
        _K("G45.9", "短暂性脑缺血发作", 0.15, 6),
        _K("G40.9", "癫痫", 0.1, 7, mortality=0.002),
        _K("G20", "帕金森病", 0.15, 9),
    )),
    _Profile("GIM", "内科", "clinical", 40, 60, daily_cost=(400, 60, 250, 220), cases=(
        _K("E11.9", "2型糖尿病不伴有并发症", 0.25, 8),
        _K("J18.9", "肺炎", 0.25, 8, mortality=0.01),
        _K("I10", "特发性(原发性)高血压", 0.2, 6),
        _K("N39.0", "泌尿道感染", 0.15, 6),
        _K("D64.9", "贫血", 0.15, 6, mortality=0.002),
    )),
    _Profile("GSUR", "普通外科", "clinical", 50, 35, daily_cost=(350, 120, 250, 320), preop_wait=(1, 3), cases=(
        _K("K35.8", "急性阑尾炎", 0.2, 5, 0.95, (_P("47.01", "腹腔镜下阑尾切除术", 2, True, 1500, 4),
                                           _P("47.09", "阑尾切除术", 2, False, 300)), emergency=True),
        _K("K80.2", "胆囊结石不伴有胆囊炎", 0.2, 5, 0.95, (_P("51.23", "腹腔镜下胆囊切除术", 3, True, 2500, 4),
                                                 _P("51.22", "胆囊切除术", 3, False, 800))),
        _K("K40.9", "单侧腹股沟疝", 0.15, 4, 0.95, (_P("53.00", "单侧腹股沟疝修补术", 2, False, 3000),
                                             _P("17.11", "腹腔镜下单侧腹股沟直疝修补术", 3, True, 6000))),
        _K("C18.9", "结肠恶性肿瘤", 0.12, 14, 0.85, (_P("45.73", "右半结肠切除术", 4, False, 8000),
                                              _P("17.33", "腹腔镜下右半结肠切除术", 4, True, 15000, 2)), 0.01,
           planned_return=0.5),
        _K("C50.9", "乳房恶性肿瘤", 0.1, 9, 0.85, (_P("85.43", "单侧乳房改良根治术", 3, False, 3000),), 0.002,
           planned_return=0.5, gender="2"),
        _K("E04.1", "甲状腺单个结节", 0.13, 5, 0.9, (_P("06.2", "单侧甲状腺腺叶切除术", 3, False, 1500),)),
        _K("K56.7", "肠梗阻", 0.1, 9, 0.3, (_P("54.59", "腹腔粘连松解术", 3, False, 1000),), 0.01, emergency=True),
    )),
    _Profile("ORTH", "骨科", "clinical", 50, 40, daily_cost=(250, 110, 200, 300), preop_wait=(2, 5), cases=(
        _K("S72.0", "股骨颈骨折", 0.18, 12, 0.9, (_P("81.52", "人工股骨头置换术", 4, False, 25000),
                                            _P("79.35", "股骨骨折切开复位内固定术", 3, False, 12000)), 0.01,
           emergency=True),
        _K("M17.9", "膝关节病", 0.15, 10, 0.8, (_P("81.54", "全膝关节置换术", 4, False, 35000),
                                          _P("80.26", "膝关节镜检查", 1, True, 2000))),
        _K("M16.9", "髋关节病", 0.08, 11, 0.85, (_P("81.51", "全髋关节置换术", 4, False, 40000),)),
        _K("M51.2", "腰椎间盘移位", 0.2, 9, 0.6, (_P("80.51", "椎间盘切除术", 3, False, 5000),
                                            _P("80.59", "经皮椎间孔镜下髓核摘除术", 3, True, 6000))),
        _K("S82.1", "胫骨近端骨折", 0.12, 11, 0.85, (_P("79.36", "胫腓骨骨折切开复位内固定术", 3, False, 9000),),
           emergency=True),
        _K("S52.5", "桡骨下端骨折", 0.15, 6, 0.6, (_P("79.32", "桡尺骨骨折切开复位内固定术", 2, False, 5000),
                                             _P("79.02", "桡尺骨骨折闭合复位术", 1, False, 300))),
        _K("S42.0", "锁骨骨折", 0.12, 6, 0.7, (_P("79.39", "锁骨骨折切开复位内固定术", 2, False, 4000),)),
    )),
    _Profile("OBGY", "妇产科", "clinical", 40, 45, group="woman", daily_cost=(150, 90, 150, 300),
             outpatient_cost=(120, 220), preop_wait=(0, 2), cases=(
        _K("O80.0", "单胎顺产", 0.3, 3),
        _K("O82.0", "经选择性剖宫产术的分娩", 0.22, 5, 1.0, (_P("74.1", "子宫下段剖宫产术", 2, False, 800),)),
        _K("D25.9", "子宫平滑肌瘤", 0.15, 6, 0.9, (_P("68.41", "腹腔镜下全子宫切除术", 3, True, 5000),
                                             _P("68.49", "经腹全子宫切除术", 3, False, 1500),
                                             _P("68.29", "子宫肌瘤剔除术", 2, False, 1000))),
        _K("N83.2", "卵巢囊肿", 0.13, 4, 0.9, (_P("65.25", "腹腔镜下卵巢病损切除术", 2, True, 3000),)),
        _K("O14.9", "子痫前期", 0.05, 7, 0.6, (_P("74.1", "子宫下段剖宫产术", 2, False, 800),), 0.0005),
        _K("O00.9", "异位妊娠", 0.1, 4, 0.9, (_P("66.62", "输卵管切除伴输卵管妊娠物去除术", 2, True, 2500),),
           emergency=True),
    )),
    _Profile("PEDS", "儿科", "clinical", 35, 60, group="child", winter=True, daily_cost=(200, 40, 150, 200),
             outpatient_cost=(90, 150), cases=(
        _K("J18.9", "肺炎", 0.35, 6, mortality=0.0005),
        _K("J21.9", "急性细支气管炎", 0.15, 5),
        _K("A09.9", "胃肠炎和结肠炎", 0.2, 4),
        _K("J06.9", "急性上呼吸道感染", 0.15, 4),
        _K("A08.0", "轮状病毒性肠炎", 0.1, 5),
        _K("J45.9", "哮喘", 0.05, 5),
    )),
    _Profile("NSUR", "神经外科", "clinical", 30, 15, daily_cost=(700, 150, 400, 420), preop_wait=(1, 4), cases=(
        _K("S06.5", "创伤性硬脑膜下出血", 0.25, 16, 0.6, (_P("01.31", "硬脑膜下血肿清除术", 4, False, 8000),
                                                 _P("01.09", "颅骨钻孔引流术", 3, False, 2000)), 0.08,
           emergency=True),
        _K("I61.9", "脑内出血", 0.25, 18, 0.35, (_P("01.39", "脑内血肿清除术", 4, False, 9000),), 0.1, emergency=True),
        _K("D32.9", "脑膜良性肿瘤", 0.2, 15, 0.9, (_P("01.51", "脑膜病损切除术", 4, False, 15000),), 0.01),
        _K("C71.9", "脑恶性肿瘤", 0.1, 18, 0.8, (_P("01.59", "脑病损切除术", 4, False, 20000),), 0.04,
           planned_return=0.4),
        _K("S06.0", "脑震荡", 0.2, 6),
    )),
    _Profile("UROL", "泌尿外科", "clinical", 30, 25, daily_cost=(300, 110, 250, 300), cases=(
        _K("N20.0", "肾结石", 0.25, 6, 0.85, (_P("55.04", "经皮肾镜碎石取石术", 3, True, 6000),
                                         _P("98.51", "体外冲击波肾碎石术", 1, True, 500))),
        _K("N20.1", "输尿管结石", 0.25, 5, 0.9, (_P("56.0", "经尿道输尿管镜取石术", 2, True, 4000),)),
        _K("N40", "前列腺增生", 0.25, 8, 0.85, (_P("60.29", "经尿道前列腺电切术", 3, True, 3000),), gender="1"),
        _K("C67.9", "膀胱恶性肿瘤", 0.15, 9, 0.9, (_P("57.49", "经尿道膀胱病损切除术", 3, True, 4000),), 0.005,
           planned_return=0.5),
        _K("N39.0", "泌尿道感染", 0.1, 6),
    )),
    _Profile("OPHT", "眼科", "clinical", 15, 35, daily_cost=(150, 200, 200, 300), outpatient_cost=(80, 120),
             preop_wait=(1, 1), cases=(
        _K("H25.9", "老年性白内障", 0.6, 2, 0.98, (_P("13.41", "白内障超声乳化抽吸术", 3, True, 3500),)),
        _K("H40.9", "青光眼", 0.15, 5, 0.8, (_P("12.64", "小梁切除术", 3, False, 1000),)),
        _K("H33.0", "视网膜脱离伴视网膜裂孔", 0.15, 6, 0.9, (_P("14.74", "玻璃体切除术", 4, True, 6000),)),
        _K("H11.0", "翼状胬肉", 0.1, 2, 0.95, (_P("11.39", "翼状胬肉切除术", 1, False, 300),)),
    )),
    _Profile("EMER", "急诊科", "clinical", 0, 80, outpatient_cost=(150, 250)),
    _Profile("LAB", "检验科", "medical_technical"),
    _Profile("RADI", "放射科", "medical_technical"),
    _Profile("PHAR", "药剂科", "medical_technical"),
    _Profile("MEDA", "医务处", "admin"),
    _Profile("FINA", "财务处", "admin"),
)
_PROFILES = {profile.code: profile for profile in _DEPARTMENTS}
_MEMBER_DEPARTMENTS = ("GIM", "GSUR", "ORTH", "OBGY", "PEDS", "EMER", "LAB", "RADI", "PHAR", "MEDA", "FINA")
_MEMBER_BEDS = 0.55
_MEMBER_OUTPATIENT = 0.45

# name, level, role — the first hospital leads the consortium
_HOSPITALS = (
    ("市第一人民医院", "tertiary", "lead"), ("城东区人民医院", "secondary", "member"),
    ("城西区中心医院", "secondary", "member"), ("北郊人民医院", "secondary", "member"),
    ("南湖区人民医院", "secondary", "member"), ("江北区中医医院", "secondary", "member"),
    ("高新区人民医院", "secondary", "member"), ("滨海新区医院", "secondary", "member"),
    ("临港人民医院", "secondary", "member"),
)

_COMORBIDITIES = (("I10", "特发性(原发性)高血压"), ("E11.9", "2型糖尿病不伴有并发症"), ("E78.5", "高脂血症"),
                  ("I25.1", "动脉硬化性心脏病"), ("N18.9", "慢性肾脏病"), ("J44.9", "慢性阻塞性肺病"),
                  ("D64.9", "贫血"), ("K21.9", "胃食管反流病"), ("E03.9", "甲状腺功能减退症"),
                  ("M81.9", "骨质疏松"))
_SURGICAL_COMPLICATIONS = (("T81.4", "操作后感染"), ("T81.0", "操作并发出血和血肿"),
                           ("I80.2", "下肢深静脉血栓形成"), ("J18.9", "医院获得性肺炎"))
_MEDICAL_COMPLICATIONS = (("J18.9", "医院获得性肺炎"), ("N39.0", "泌尿道感染"), ("L89.9", "压疮"),
                          ("I26.9", "肺栓塞"))
_POSTOP_MIN_DAYS = {1: 1, 2: 1, 3: 2, 4: 3}
_SURGERY_FEE = {1: 600.0, 2: 1800.0, 3: 4000.0, 4: 8500.0}  # operation and anaesthesia, CNY
_SURGEON_GRADES = {4: SENIOR_TITLE_GRADES, 3: ("正高", "副高", "中级")}  # 手术分级授权
_TARGET_OCCUPANCY = 0.93
_INITIAL_OCCUPANCY = 0.85  # the wards are not empty when the history starts
_QUIET_DAYS = 60  # a random admission never picks someone discharged this recently (readmissions are booked)

# outpatient volume: month of year, weekday (Mon..Sun); respiratory/paediatric winter on top
_MONTH_FACTOR = {1: 1.08, 2: 0.82, 3: 1.02, 4: 1.0, 5: 0.97, 6: 0.96, 7: 1.0, 8: 0.98, 9: 1.0, 10: 0.9, 11: 1.04,
                 12: 1.1}
_WINTER_FACTOR = {12: 1.25, 1: 1.3, 2: 1.15, 3: 1.05, 6: 0.85, 7: 0.8, 8: 0.85}
_WEEKDAY_OUTPATIENT = (1.18, 1.08, 1.04, 1.03, 1.0, 0.68, 0.55)
_WEEKDAY_ADMISSION = (1.2, 1.12, 1.08, 1.05, 1.0, 0.8, 0.7)

# title grade shares and title names by role
_TITLE_SHARES = {
    "doctor": (("正高", 0.12), ("副高", 0.22), ("中级", 0.38), ("初级", 0.28)),
    "nurse": (("正高", 0.02), ("副高", 0.08), ("中级", 0.35), ("初级", 0.55)),
    "technician": (("正高", 0.03), ("副高", 0.1), ("中级", 0.4), ("初级", 0.47)),
    "admin": (("中级", 0.3), ("初级", 0.2), ("无", 0.5)),
}
_TITLE_NAMES = {
    "doctor": {"正高": "主任医师", "副高": "副主任医师", "中级": "主治医师", "初级": "住院医师"},
    "nurse": {"正高": "主任护师", "副高": "副主任护师", "中级": "主管护师", "初级": "护师"},
    "technician": {"正高": "主任技师", "副高": "副主任技师", "中级": "主管技师", "初级": "技师"},
    "admin": {"中级": "经济师", "初级": "助理经济师"},
}

# equipment: name, category, value range CNY, count range; generic items go to every clinical ward
_GENERIC_EQUIPMENT = (("多参数心电监护仪", "监护设备", 40_000, 120_000, (3, 8)),
                      ("输液泵", "治疗设备", 8_000, 20_000, (4, 10)),
                      ("除颤仪", "急救设备", 60_000, 150_000, (1, 2)))
_EQUIPMENT = {
    "CARD": (("数字减影血管造影机(DSA)", "影像设备", 8_000_000, 15_000_000, (1, 1)),
             ("心脏彩色多普勒超声诊断仪", "超声设备", 800_000, 2_000_000, (1, 2))),
    "RESP": (("有创呼吸机", "生命支持设备", 200_000, 450_000, (2, 4)), ("电子支气管镜", "内镜设备", 300_000, 600_000, (1, 2))),
    "GAST": (("电子胃肠镜系统", "内镜设备", 500_000, 1_200_000, (1, 3)),),
    "NEUR": (("经颅多普勒超声仪", "超声设备", 200_000, 500_000, (1, 1)),),
    "GIM": (("动态心电图仪", "诊疗设备", 50_000, 120_000, (1, 2)),),
    "GSUR": (("腹腔镜系统", "手术设备", 1_200_000, 2_500_000, (1, 2)), ("高频电刀", "手术设备", 80_000, 200_000, (2, 4))),
    "ORTH": (("C型臂X光机", "影像设备", 600_000, 1_500_000, (1, 1)), ("关节镜系统", "手术设备", 800_000, 1_500_000, (1, 1))),
    "OBGY": (("胎儿监护仪", "监护设备", 30_000, 60_000, (2, 5)), ("宫腔镜系统", "内镜设备", 400_000, 800_000, (1, 1))),
    "PEDS": (("婴儿培养箱", "生命支持设备", 80_000, 150_000, (2, 4)), ("新生儿蓝光治疗仪", "治疗设备", 20_000, 50_000, (1, 3))),
    "NSUR": (("神经外科手术显微镜", "手术设备", 1_500_000, 3_500_000, (1, 1)),),
    "UROL": (("钬激光治疗机", "手术设备", 800_000, 1_600_000, (1, 1)),
             ("体外冲击波碎石机", "治疗设备", 600_000, 1_200_000, (1, 1))),
    "OPHT": (("超声乳化玻切一体机", "手术设备", 1_000_000, 2_000_000, (1, 1)),
             ("光学相干断层扫描仪(OCT)", "影像设备", 500_000, 1_000_000, (1, 1))),
    "EMER": (("急救转运呼吸机", "生命支持设备", 100_000, 250_000, (1, 3)),),
    "RADI": (("CT扫描仪", "影像设备", 5_000_000, 12_000_000, (1, 2)), ("磁共振成像系统(MRI)", "影像设备", 10_000_000, 25_000_000, (0, 1)),
             ("数字化X线摄影系统(DR)", "影像设备", 800_000, 1_500_000, (1, 2))),
    "LAB": (("全自动生化分析仪", "检验设备", 1_000_000, 3_000_000, (1, 2)),
            ("全自动血细胞分析仪", "检验设备", 300_000, 800_000, (1, 2)),
            ("化学发光免疫分析仪", "检验设备", 800_000, 1_800_000, (1, 1))),
    "PHAR": (("自动发药机", "药事设备", 1_000_000, 2_000_000, (0, 1)),),
    "MEDA": (("服务器", "信息设备", 100_000, 300_000, (1, 2)),),
    "FINA": (("服务器", "信息设备", 100_000, 300_000, (1, 1)),),
}

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严武戴莫孔汤"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰红梅建国志文斌辉鹏宇浩婷雪琳晨欣怡思佳涵轩诺雨萍波宁凯子睿"
_MOBILE_PREFIXES = ("130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152", "155", "156", "158",
                    "159", "176", "177", "180", "181", "182", "186", "187", "188", "189", "199")
_AREA_CODES = ("310115", "310104", "310110", "320102", "320506", "330106", "340104", "360102", "410105", "420106")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
