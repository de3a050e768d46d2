"""ID numbers in every common writing are masked before anything is stored or
logged: a generator writes valid ID numbers the way people type them (grouped by
dashes, spaces or dots, after an "ID" label, run into a phone number, with a
lower-case x, in full-width digits), a real dispatcher handles them through a
mediation form to a ticket, and no stored byte of the SQLite file or its WAL,
no row of a PostgreSQL database, and no log line, holds the number."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import Core
from flows.messages import IncomingMessage
from nlu.entities import extract_id_numbers, mask_personal_data
from tests.pg_server import database_text

PROVINCES = ("11", "12", "31", "44", "50", "65", "82")


def with_check_char(first17: str) -> str:
    """GB 11643-1999 check character, computed independently of the code under test."""
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    total = sum(int(d) * w for d, w in zip(first17, weights, strict=True))
    return first17 + "10X98765432"[total % 11]


@st.composite
def id_numbers(draw: st.DrawFn) -> str:
    region = draw(st.sampled_from(PROVINCES)) + f"{draw(st.integers(0, 9999)):04d}"
    born = date(1930, 1, 1) + timedelta(days=draw(st.integers(0, 90 * 365)))
    seq = f"{draw(st.integers(0, 999)):03d}"
    return with_check_char(region + born.strftime("%Y%m%d") + seq)


def _group(number: str, sizes: tuple[int, ...], sep: str) -> str:
    parts, pos = [], 0
    for size in sizes:
        parts.append(number[pos : pos + size])
        pos += size
    return sep.join(p for p in parts if p)


@st.composite
def written(draw: st.DrawFn, number: str) -> str:
    """`number` as a person might type it."""
    if number.endswith("X") and draw(st.booleans()):
        number = number[:-1] + "x"
    sep = draw(st.sampled_from(["", " ", "-", ".", "  ", " - ", "—", "/", "_"]))
    groupings = [(6, 8, 4), (4, 4, 4, 4, 2), (3, 3, 4, 4, 4), (6, 4, 4, 4), (18,)]
    sizes = draw(st.sampled_from(groupings))
    text = _group(number, sizes, sep)
    if draw(st.booleans()):
        text = text.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"})
    labels = ["", "ID", "id:", "身份证", "身份证号：", "ID No.", "13912345678"]
    prefix = draw(st.sampled_from(labels))
    suffix = draw(st.sampled_from(["", "13912345678", " 电话13912345678", "。", "X"]))
    return prefix + text + suffix


def _secret_parts(number: str, typed: str) -> list[str]:
    """What must not be found: the number, its hidden middle (birth date and
    sequence) in clear, and the middle as it was typed."""
    hidden = number[4:16]
    return [number, number.lower(), hidden, typed[4:-4] if len(typed) > 12 else typed]


def _stored_bytes(core: Core) -> bytes:
    path = core.store.path
    data = path.read_bytes()
    for suffix in ("-wal", "-shm", "-journal"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            data += extra.read_bytes()
    return data


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_every_common_writing_is_found() -> None:
    number = "11010519491231002X"
    for typed in (
        "110105-19491231-002X",
        "1101 0519 4912 3100 2X",
        "ID11010519491231002X",
        "110105.19491231.002X",
        "1391234567811010519491231002x",
        "11010519491231002X13912345678",
    ):
        [entity] = extract_id_numbers(f"我的身份证{typed}")
        assert entity.value == "1101************2X"
        masked = mask_personal_data(typed, mask_phones=True)
        assert number not in masked.upper().replace("-", "").replace(" ", "").replace(".", "")
        assert "19491231" not in masked and "1949" not in masked


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_written_id_number_reaches_any_stored_byte_or_log(
    core: Core, data: st.DataObject
) -> None:
    stored, logged, secrets = _one_resident(core, data)
    for secret in secrets:
        assert secret.encode() not in stored, f"{secret!r} is stored"
        assert secret not in logged, f"{secret!r} is logged"


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_written_id_number_reaches_any_postgresql_row_or_log(
    pg_core: Core, data: st.DataObject
) -> None:
    _stored, logged, secrets = _one_resident(pg_core, data, file=False)
    rows = database_text(pg_core.store)
    assert "王芳" in rows  # the form's other details are there to be found
    for secret in secrets:
        assert secret not in rows, f"{secret!r} is in a row"
        assert secret not in logged, f"{secret!r} is logged"


def _one_resident(
    core: Core, data: st.DataObject, *, file: bool = True
) -> tuple[bytes, str, list[str]]:
    """One resident files a mediation request with an ID number written some
    way; what is stored (SQLite's bytes), what was logged, what must be in neither."""
    number = data.draw(id_numbers())
    typed = data.draw(written(number))
    user = f"u{abs(hash(typed)) % 10**9}"
    collect = _Collect()
    root = logging.getLogger()
    root.addHandler(collect)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        for i, text in enumerate(
            (
                f"我叫王芳，身份证{typed}，楼上邻居天天半夜吵，想调解",
                typed,
                "住幸福小区3号楼，电话13912345678",
                "确认",
            )
        ):
            msg = IncomingMessage(
                channel="wechat", user_id=user, text=text, message_id=f"{user}-{i}"
            )
            core.dispatcher.handle(msg)
    finally:
        root.removeHandler(collect)
        root.setLevel(old_level)
    stored = _stored_bytes(core) if file else b""
    return stored, "\n".join(collect.lines), _secret_parts(number, typed)
