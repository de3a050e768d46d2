"""Table-driven tests for every entity extractor, including what must NOT be an entity."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nlu.entities import (
    extract_amounts,
    extract_entities,
    extract_id_numbers,
    extract_phones,
    extract_ticket_ids,
    id_number_is_valid,
    mask_personal_data,
    normalise_ticket_id,
)


def with_check_char(first17: str) -> str:
    """GB 11643-1999 check character, computed independently of the code under test."""
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    total = sum(int(d) * w for d, w in zip(first17, weights, strict=True))
    return first17 + "10X98765432"[total % 11]


ID_A = with_check_char("65010219900101123")  # Urumqi, born 1990-01-01
ID_B = with_check_char("32050619851231002")  # Suzhou Wuzhong, born 1985-12-31


# --- amount -------------------------------------------------------------------

AMOUNTS = [
    ("开小吃店想贷五万块钱，利息多少", 50000, "五万块钱"),
    ("想贷3万元", 30000, "3万元"),
    ("八千块够不够", 8000, "八千块"),
    ("能贷1.5万吗", 15000, "1.5万"),
    ("借两万五", 25000, "两万五"),
    ("5w能批吗", 50000, "5w"),
    ("¥30000", 30000, "¥30000"),
    ("想贷５万", 50000, "５万"),
    ("十万块钱要什么材料", 100000, "十万块钱"),
    ("最多二十万", 200000, "二十万"),
    ("老板欠我3000元", 3000, "3000元"),
    ("押金1万5千没退", 15000, "1万5千"),
    ("贷款30,000元", 30000, "30,000元"),
    ("人民币3000元", 3000, "人民币3000元"),
    ("工资3k一个月", 3000, "3k"),
    ("想贷30000", 30000, "30000"),
    ("他欠了我8000", 8000, "8000"),
    ("贷个三万多块", 30000, "三万多块"),
    ("壹万元", 10000, "壹万元"),
    ("贷十万一年要还多少利息", 100000, "十万"),
    ("贷一万一个月利息多少", 10000, "一万"),
    ("贷¥30000一年利息", 30000, "¥30000"),
    ("十万零五百块", 100500, "十万零五百块"),
    ("两千一百元", 2100, "两千一百元"),
]


@pytest.mark.parametrize(("text", "value", "surface"), AMOUNTS)
def test_amounts_are_integer_yuan(text: str, value: int, surface: str) -> None:
    [entity] = extract_amounts(text)
    assert entity.value == value
    assert isinstance(entity.value, int)
    assert text[entity.start : entity.end] == surface


NOT_AMOUNTS = [
    "我住3号楼",
    "利率3.45%是年化吗",
    "1510服务圈有哪些功能",
    "情况说明要写500字吗",
    "孩子15岁能当志愿者吗",
    "能贷几万",
    "十几万的额度",
    "大概五六万吧",
    "百姓说事云怎么用",
    "千万别骗我",
    "万一还不上怎么办",
    "三千多人参加",
    "跑了一千米",
    "一下子说不清",
    "两个人吵架",
    "2024年3月5日提交的",
    "第1期还款",
    "5wifi密码",
    "跑了两千一百米",
    "贷款额度多少",
]


@pytest.mark.parametrize("text", NOT_AMOUNTS)
def test_numbers_that_are_not_money(text: str) -> None:
    assert extract_amounts(text) == []


@pytest.mark.parametrize(
    "text", ["电话13912345678", f"身份证{ID_A}", "单号TX261126-0042", "手机139 1234 5678"]
)
def test_phone_id_and_ticket_digits_never_become_amounts(text: str) -> None:
    assert [e for e in extract_entities(text) if e.entity == "amount"] == []


# --- phone --------------------------------------------------------------------

PHONES = [
    ("电话13912345678", "13912345678", "13912345678"),
    ("打139 1234 5678找我", "13912345678", "139 1234 5678"),
    ("手机：139-1234-5678", "13912345678", "139-1234-5678"),
    ("+8613912345678", "13912345678", "+8613912345678"),
    ("+86 139 1234 5678", "13912345678", "+86 139 1234 5678"),
    ("008618612345678", "18612345678", "008618612345678"),
    ("我的号码是１５９１２３４５６７８", "15912345678", "１５９１２３４５６７８"),
    ("tel19912345678 谢谢", "19912345678", "19912345678"),
]


@pytest.mark.parametrize(("text", "digits", "surface"), PHONES)
def test_mobile_numbers(text: str, digits: str, surface: str) -> None:
    [entity] = extract_phones(text)
    assert entity.value == digits
    assert text[entity.start : entity.end] == surface


@pytest.mark.parametrize(
    "text",
    [
        "12912345678",  # 12x is not a mobile prefix
        "1391234567",  # 10 digits
        "139123456789",  # 12 digits
        "座机0991-1234567",
        "订单号2024139123456789",
    ],
)
def test_not_phones(text: str) -> None:
    assert extract_phones(text) == []


# --- ticket_id ----------------------------------------------------------------

TICKETS = [
    ("我的单号TX261126-0042", "TX261126-0042", "TX261126-0042"),
    ("tx261126-0042进度如何", "TX261126-0042", "tx261126-0042"),
    ("TX2611260042", "TX261126-0042", "TX2611260042"),
    ("工单 Tx 261126 00421 呢", "TX261126-00421", "Tx 261126 00421"),
    ("ＴＸ２６１１２６－００４２", "TX261126-0042", "ＴＸ２６１１２６－００４２"),
]


@pytest.mark.parametrize(("text", "value", "surface"), TICKETS)
def test_ticket_ids_are_normalised(text: str, value: str, surface: str) -> None:
    [entity] = extract_ticket_ids(text)
    assert entity.value == value
    assert text[entity.start : entity.end] == surface


@pytest.mark.parametrize(
    "text", ["TX26112-0042", "TX261126-004", "ATX261126-0042", "TX261399-0042"]
)
def test_not_ticket_ids(text: str) -> None:
    assert extract_ticket_ids(text) == []


def test_normalise_ticket_id() -> None:
    assert normalise_ticket_id(" tx2611260042 ") == "TX261126-0042"
    assert normalise_ticket_id("TX26112") is None


# --- id_number ----------------------------------------------------------------


def test_id_numbers_are_found_and_masked() -> None:
    text = f"身份证号{ID_A}，电话13912345678"
    [entity] = extract_id_numbers(text)
    assert text[entity.start : entity.end] == ID_A
    assert entity.value == ID_A[:4] + "*" * 12 + ID_A[-2:]
    assert ID_A not in str(entity.value)
    assert ID_A[6:14] not in str(entity.value)  # the birth date is hidden


def test_lowercase_x_check_character_is_accepted() -> None:
    candidates = (with_check_char(f"11010519900101{i:03d}") for i in range(1000))
    number = next(c for c in candidates if c.endswith("X"))
    [entity] = extract_id_numbers(number.lower())
    assert str(entity.value).endswith("X")


@pytest.mark.parametrize(
    "number",
    [
        ID_A[:-1] + ("0" if ID_A[-1] != "0" else "1"),  # wrong checksum
        with_check_char("65010219901301123"),  # month 13
        with_check_char("65010221900101123"),  # born in 2190
        with_check_char("00010219900101123"),  # no such province
        ID_A[:17],  # 17 characters
    ],
)
def test_invalid_id_numbers(number: str) -> None:
    assert not id_number_is_valid(number)
    assert extract_id_numbers(f"号码{number}") == []


def test_id_number_digits_are_not_a_phone() -> None:
    assert [e.entity for e in extract_entities(f"身份证{ID_B}")] == ["id_number"]


# --- all together ---------------------------------------------------------------


def test_offsets_point_into_the_original_text() -> None:
    text = f"我叫阿依古丽，电话+86 139-1234-5678，身份证{ID_B}，想贷５万，单号tx2611260042"
    found = {e.entity: e for e in extract_entities(text)}
    assert set(found) == {"phone", "id_number", "amount", "ticket_id"}
    assert text[found["amount"].start : found["amount"].end] == "５万"
    assert text[found["phone"].start : found["phone"].end] == "+86 139-1234-5678"
    starts = [e.start for e in extract_entities(text)]
    assert starts == sorted(starts)


def test_mask_personal_data() -> None:
    text = f"身份证{ID_A} 电话13912345678"
    masked = mask_personal_data(text)
    assert ID_A not in masked and "13912345678" in masked
    assert ID_A[:4] + "*" * 12 + ID_A[-2:] in masked
    both = mask_personal_data(text, mask_phones=True)
    assert "13912345678" not in both and "139****5678" in both


def test_mask_catches_mistyped_id_numbers_too() -> None:
    wrong = ID_A[:-1] + ("0" if ID_A[-1] != "0" else "1")
    assert wrong not in mask_personal_data(f"身份证{wrong}")


@pytest.mark.parametrize("text", ["", "   ", "\x00\x1b[31m", "😀😀", "\ud800坏", "a" * 10000])
def test_extractors_survive_odd_input(text: str) -> None:
    assert isinstance(extract_entities(text), list)
    assert isinstance(mask_personal_data(text), str)


@given(
    st.text(
        alphabet=st.sampled_from(list("0123456789１３５万千十一两五元块¥wkTXx-+ 86号楼%.")),
        max_size=40,
    )
)
def test_spans_are_valid_and_disjoint_for_any_text(text: str) -> None:
    entities = extract_entities(text)
    for entity in entities:
        assert 0 <= entity.start < entity.end <= len(text)
        if entity.entity == "amount":
            assert isinstance(entity.value, int) and entity.value > 0
    for a, b in itertools.pairwise(entities):
        assert a.end <= b.start
