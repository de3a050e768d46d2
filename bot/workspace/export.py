"""The filtered queue and the volunteer list as CSV and Excel, with Chinese
headers, for the monthly report. Phones in the ticket export are masked: a
report leaves the office; the volunteer desk's list keeps them to call back."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.utils import get_column_letter
from starlette.responses import Response

from bot.workspace.http import Call
from bot.workspace.service import filter_from_query, mask_phone_text, masked_fields
from flows.staff import local_time
from flows.store import LOCAL_TZ

TICKET_HEADERS = (
    "单号",
    "类型",
    "状态",
    "受理部门",
    "负责人",
    "渠道",
    "联系电话",
    "是否超时",
    "提交时间",
    "更新时间",
    "办结时间",
    "内容",
)
VOLUNTEER_HEADERS = (
    "编号",
    "姓名",
    "联系电话",
    "服务队",
    "特长",
    "可服务时间",
    "渠道",
    "报名时间",
    "联系人",
    "联系时间",
)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _fields_text(fields: dict[str, Any]) -> str:
    return "；".join(
        f"{k}：{v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}"
        for k, v in masked_fields(fields).items()
    )


def ticket_rows(call: Call) -> list[list[str]]:
    ws = call.workspace
    page = ws.queue(
        call.user, filter_from_query(call.query), order="newest", limit=None, with_counts=False
    )
    return [
        [
            t.id,
            ws.kind_label(t.kind),
            ws.status_label(t.status),
            t.department,
            t.assignee or "",
            ws.label("workspace.channel", t.channel),
            mask_phone_text(t.phone) or "",
            "是" if t.id in page.overdue_ids else "否",
            local_time(t.created_at),
            local_time(t.updated_at),
            local_time(t.resolved_at) if t.resolved_at else "",
            _fields_text(t.fields),
        ]
        for t in page.tickets
    ]


def volunteer_rows(call: Call) -> list[list[str]]:
    ws = call.workspace
    return [
        [
            v["id"],
            v["name"] or "",
            v["phone"] or "",
            v["team"] or "",
            v["skill"] or "",
            v["availability"] or "",
            ws.label("workspace.channel", v["channel"]),
            local_time(v["created_at"]),
            v["contacted_by"] or "",
            local_time(v["contacted_at"]) if v["contacted_at"] else "",
        ]
        for v in ws.volunteers(call.user, call.query)
    ]


def _stamp() -> str:
    return datetime.now(LOCAL_TZ).strftime("%Y%m%d-%H%M")


def as_csv(name: str, headers: Sequence[str], rows: list[list[str]]) -> Response:
    out = io.StringIO()
    # A byte order mark so that Excel on an office PC reads the file as UTF-8.
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(headers)
    writer.writerows(rows)
    return Response(
        out.getvalue().encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}-{_stamp()}.csv"'},
    )


def as_xlsx(name: str, title: str, headers: Sequence[str], rows: list[list[str]]) -> Response:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title
    sheet.append(list(headers))
    for row in rows:
        sheet.append(row)
    sheet.freeze_panes = "A2"
    for i, header in enumerate(headers, start=1):
        widest = max([len(header) * 2, *(len(str(r[i - 1])) for r in rows[:200])])
        sheet.column_dimensions[get_column_letter(i)].width = min(60, widest + 2)
    out = io.BytesIO()
    book.save(out)
    return Response(
        out.getvalue(),
        media_type=XLSX,
        headers={"Content-Disposition": f'attachment; filename="{name}-{_stamp()}.xlsx"'},
    )


def tickets_csv(call: Call) -> Response:
    return as_csv("tickets", TICKET_HEADERS, ticket_rows(call))


def tickets_xlsx(call: Call) -> Response:
    return as_xlsx("tickets", "工单", TICKET_HEADERS, ticket_rows(call))


def volunteers_csv(call: Call) -> Response:
    return as_csv("volunteers", VOLUNTEER_HEADERS, volunteer_rows(call))


def volunteers_xlsx(call: Call) -> Response:
    return as_xlsx("volunteers", "志愿者", VOLUNTEER_HEADERS, volunteer_rows(call))
