"""The simulated vendors' catalogues: the planted scenarios and the vendors they sit on, service
types, vendor names, healthy rates, file names, analytes, promised turnarounds, price items, volumes,
headcounts, roles, certificates, and the pools fake identities are drawn from."""

from __future__ import annotations

MIN_VENDORS = 12
MIN_MONTHS = 3
MAX_VENDORS = 998  # V999 is the unknown vendor id planted as a defect
UNKNOWN_VENDOR_ID = "V999"

SCENARIOS: tuple[str, ...] = (
    "delivery_delay_climb",
    "lab_accuracy_yellow",
    "report_delay_blue",
    "privacy_leak",
    "three_months_below_standard",
    "cold_chain_excursion",
    "certificate_expiring",
    "price_above_reference",
    "volume_surge_timeliness_drop",
    "satisfaction_low",
    "related_party",
    "corrected_report",
)

# scenario -> (service type, vendor name); the scenario vendors get V001..V012 in this order
_SCENARIO_VENDORS: dict[str, tuple[str, str]] = {
    "delivery_delay_climb": ("logistics_delivery", "顺达医药物流有限公司"),
    "lab_accuracy_yellow": ("lab_testing", "华康医学检验所有限公司"),
    "report_delay_blue": ("imaging", "明影医学影像诊断中心有限公司"),
    "privacy_leak": ("it_services", "智联医疗信息技术有限公司"),
    "three_months_below_standard": ("pathology_diagnosis", "精准病理诊断中心有限公司"),
    "cold_chain_excursion": ("logistics_delivery", "安泰冷链医药物流有限公司"),
    "certificate_expiring": ("surgical_assistance", "仁心手术室护理服务有限公司"),
    "price_above_reference": ("imaging", "康影医学影像诊断中心有限公司"),
    "volume_surge_timeliness_drop": ("lab_testing", "博润医学检验所有限公司"),
    "satisfaction_low": ("patient_guide", "惠民导医服务有限公司"),
    "related_party": ("cleaning", "洁美物业管理有限公司"),
    "corrected_report": ("landscaping", "绿苑园林绿化工程有限公司"),
}
_EXTRA_TYPES = ("lab_testing", "patient_guide", "logistics_delivery", "imaging", "cleaning",
                "pathology_diagnosis", "it_services", "surgical_assistance", "landscaping")
_NAME_SUFFIX = {
    "pathology_diagnosis": "病理诊断中心有限公司",
    "surgical_assistance": "手术室护理服务有限公司",
    "lab_testing": "医学检验所有限公司",
    "imaging": "医学影像诊断中心有限公司",
    "logistics_delivery": "医药物流有限公司",
    "patient_guide": "导医服务有限公司",
    "it_services": "医疗信息技术有限公司",
    "cleaning": "物业管理有限公司",
    "landscaping": "园林绿化工程有限公司",
}
_NAME_PREFIXES = ("瑞达", "和悦", "恒信", "德济", "仁和", "众诚", "华信", "同心", "泰和", "信达", "嘉禾", "永康",
                  "福瑞", "宏远", "天成", "海盛", "金桥", "中联", "博爱", "康宁", "益民", "长青", "鸿运", "新元",
                  "君安", "睿智", "正清", "汇通", "百川", "致远")
_CITIES = ("上海", "江苏", "浙江", "安徽", "北京", "广东", "湖北", "四川", "山东", "福建")

_RISK_TIER = {"pathology_diagnosis": "high", "surgical_assistance": "high", "cleaning": "low", "landscaping": "low"}
_LAB_TYPES = ("lab_testing", "pathology_diagnosis")
_REPORT_TYPES = ("lab_testing", "pathology_diagnosis", "imaging")
_PATIENT_FACING = ("patient_guide", "imaging", "lab_testing", "surgical_assistance", "cleaning")

# healthy behaviour 正常服务水平
_HEALTHY_QC_FAIL = 0.007
_HEALTHY_REPORT_LATE = 0.02
_HEALTHY_DELIVERY_LATE = 0.03
_HEALTHY_SATISFACTION = 0.92
_HEALTHY_SPOT_FAIL = 0.03
# shares of date and of timestamp values written in another format (dates live in the small files)
_MIXED_DATE_SHARE = 0.01
_MIXED_TIMESTAMP_SHARE = 0.003

_FILE_NAMES = {
    "registry": "vendor_registry.csv",
    "contracts": "contracts.csv",
    "qualifications": "qualifications.csv",
    "price_list": "price_list.csv",
    "lab_qc_results": "lab_qc_results.csv",
    "report_turnaround": "report_turnaround.csv",
    "deliveries": "deliveries.csv",
    "cold_chain_readings": "cold_chain_readings.csv",
    "staff_roster": "staff_roster.csv",
    "inspections": "inspections.csv",
    "incidents": "incidents.csv",
}
_REGISTERS = ("registry", "contracts", "qualifications", "price_list")

# analyte, two control levels, allowed deviation % (WS/T 403-style limits)
_LAB_ANALYTES = (
    ("葡萄糖(GLU)", (5.5, 13.8), 7.0),
    ("丙氨酸氨基转移酶(ALT)", (40.0, 120.0), 16.0),
    ("肌酐(CREA)", (88.0, 450.0), 12.0),
    ("钾(K)", (4.0, 6.5), 6.0),
    ("总胆固醇(TC)", (4.5, 7.2), 9.0),
    ("血红蛋白(HGB)", (85.0, 130.0), 6.0),
)
_PATHOLOGY_ANALYTES = (
    ("Ki-67阳性指数(%)", (15.0, 60.0), 15.0),
    ("ER阳性细胞比例(%)", (50.0, 90.0), 12.0),
    ("PD-L1 TPS(%)", (10.0, 50.0), 20.0),
    ("DNA倍体指数", (1.0, 1.8), 10.0),
)
# promised hours and their weights per service type
_PROMISES = {
    "lab_testing": ((4, 0.2), (24, 0.8)),
    "pathology_diagnosis": ((72, 0.6), (120, 0.4)),
    "imaging": ((2, 0.15), (24, 0.85)),
}
_ITEM_CATEGORIES = ("药品", "检验试剂", "医用耗材", "冷链药品", "疫苗", "血液制品")
# item_code, item_name, public-hospital reference price
_PRICE_ITEMS = {
    "lab_testing": (("LAB-001", "血常规", 25.0), ("LAB-002", "肝功能全套", 80.0), ("LAB-003", "肾功能三项", 45.0),
                    ("LAB-004", "糖化血红蛋白", 60.0), ("LAB-005", "甲状腺功能五项", 150.0)),
    "pathology_diagnosis": (("PAT-001", "组织病理学诊断", 220.0), ("PAT-002", "免疫组化(每标记物)", 180.0),
                            ("PAT-003", "术中冰冻病理诊断", 300.0), ("PAT-004", "细胞学诊断", 80.0)),
    "imaging": (("CT-001", "胸部CT平扫", 260.0), ("CT-002", "头颅CT平扫", 220.0), ("MR-001", "头颅MRI平扫", 580.0),
                ("DR-001", "胸部DR正位片", 60.0), ("US-001", "腹部彩超", 150.0)),
    "logistics_delivery": (("LOG-001", "常温药品配送(每单)", 25.0), ("LOG-002", "冷链药品配送(每单)", 60.0),
                           ("LOG-003", "检验标本转运(每箱)", 40.0)),
    "patient_guide": (("GUI-001", "门诊导医服务(人·月)", 6500.0), ("GUI-002", "陪同检查服务(人次)", 30.0)),
    "it_services": (("IT-001", "信息系统运维(月)", 45000.0), ("IT-002", "驻场工程师(人·月)", 15000.0)),
    "cleaning": (("CLN-001", "病区保洁(平方米·月)", 8.5), ("CLN-002", "医疗废物院内收运(吨)", 1200.0)),
    "landscaping": (("LND-001", "绿化养护(平方米·年)", 12.0), ("LND-002", "草坪修剪(平方米·次)", 0.8)),
    "surgical_assistance": (("SUR-001", "器械护士配台(台次)", 300.0), ("SUR-002", "手术室护工(人·月)", 5500.0)),
}
# monthly service reports for month M arrive on this day of M+1; a correction comes at least a day later
_REPORT_DAY = 3
# the longest promise of any report: an item opened in the last minute of a month is due this many days on
_MAX_PROMISED_HOURS = max(hours for options in _PROMISES.values() for hours, _ in options)
# From this day of month M+1 on, month M is settled in the data that has arrived (see `_settled_month`):
# its reports arrived on the 3rd and a correction re-sent on end - 1 (the 4th at the earliest) comes
# after them, and everything opened in M was due by then (received 23:59 on M's last day + 120 h is the
# 5th, 23:59). Deliveries are promised for the day they are booked, so they are due by M's last day.
_SETTLED_DAY = max(_REPORT_DAY + 2, (24 * 60 - 1 + 60 * _MAX_PROMISED_HOURS) // (24 * 60))
_ANNUAL_VALUE = {"pathology_diagnosis": 2.0e6, "surgical_assistance": 1.1e6, "lab_testing": 3.5e6, "imaging": 2.8e6,
                 "logistics_delivery": 1.2e6, "patient_guide": 0.9e6, "it_services": 1.5e6, "cleaning": 2.4e6,
                 "landscaping": 0.3e6}
_MONTHLY_VOLUME = {"patient_guide": 9000, "cleaning": 3200, "landscaping": 400, "it_services": 650,
                   "surgical_assistance": 700}
_HEADCOUNT = {"pathology_diagnosis": 14, "surgical_assistance": 22, "lab_testing": 26, "imaging": 18,
              "logistics_delivery": 30, "patient_guide": 36, "it_services": 12, "cleaning": 64, "landscaping": 16}
_ROLES = {
    "pathology_diagnosis": ("病理医师", "病理技师", "标本管理员"),
    "surgical_assistance": ("器械护士", "手术室护工", "消毒供应员"),
    "lab_testing": ("检验技师", "标本转运员", "质控员"),
    "imaging": ("影像技师", "诊断医师", "登记员"),
    "logistics_delivery": ("配送员", "冷链司机", "仓管员"),
    "patient_guide": ("导医", "陪检员", "客服专员"),
    "it_services": ("运维工程师", "驻场工程师", "网络管理员"),
    "cleaning": ("保洁员", "医疗废物收运员", "保洁领班"),
    "landscaping": ("绿化工", "养护技术员"),
}
_CERTIFICATES = {  # besides the business licence every vendor holds
    "pathology_diagnosis": ("medical_institution_licence", "iso15189"),
    "lab_testing": ("medical_institution_licence", "iso15189"),
    "imaging": ("medical_institution_licence",),
    "surgical_assistance": ("medical_institution_licence",),
    "logistics_delivery": ("gsp",),
    "it_services": ("mlps_level3",),
}
_CERT_YEARS = {"business_licence": 20, "medical_institution_licence": 5, "iso15189": 6, "gsp": 5, "mlps_level3": 3}

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严武戴莫孔汤"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰红梅建国志文斌辉鹏宇浩婷雪琳晨欣怡思佳涵轩诺雨萍波宁凯"
_MOBILE_PREFIXES = ("130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152", "155", "156", "158",
                    "159", "176", "177", "180", "181", "182", "186", "187", "188", "189", "199")
_AREA_CODES = ("310115", "310104", "310110", "320102", "320506", "330106", "340104", "360102", "410105", "420106",
               "430104", "510107", "370102", "350102")
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
