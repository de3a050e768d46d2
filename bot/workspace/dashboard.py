"""`/staff/dashboard`: the service figures as charts and tables, filtered by
date range and department; `/staff/report` the printable monthly report and
`/staff/export/report.xlsx` the same as Excel. The figures are flows/stats.py's,
as in `tongxin tickets stats` and `GET /staff/api/stats`."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from bot.workspace import charts
from bot.workspace.export import XLSX
from bot.workspace.http import Call, Context, page
from bot.workspace.service import StaffInputError, _parse_date
from flows.stats import StatsFilter, local_today

RANGES = (30, 90)
# The charts carry pygal's own <style>: this page alone allows inline styles
# (still no inline script, nothing from elsewhere).
DASHBOARD_CSP = (
    b"default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:;"
    b" frame-ancestors 'none'; form-action 'self'"
)


def stats_filter(query: Mapping[str, str], *, default_days: int | None) -> StatsFilter:
    """since / until (YYYY-MM-DD) / days (30, 90) / department from a query;
    without dates, the last `default_days` days (None: all time)."""
    since, until = _parse_date(query.get("since")), _parse_date(query.get("until"))
    days = query.get("days")
    if days and not (since or until):
        try:
            n = int(days)
        except ValueError as exc:
            raise StaffInputError(f"days must be a number of days, got {days!r}") from exc
        if not 1 <= n <= 3660:
            raise StaffInputError("days must be between 1 and 3660")
        until = local_today()
        since = until - timedelta(days=n - 1)
    elif default_days and not (since or until):
        until = local_today()
        since = until - timedelta(days=default_days - 1)
    if since and until and since > until:
        raise StaffInputError("the start date is after the end date")
    return StatsFilter(since=since, until=until, department=query.get("department") or None)


def month_filter(query: Mapping[str, str]) -> tuple[str, StatsFilter]:
    raw = (query.get("month") or "").strip()
    today = local_today()
    if not raw:
        first = today.replace(day=1)
    else:
        try:
            first = date.fromisoformat(raw + "-01")
        except ValueError as exc:
            raise StaffInputError(f"a month is written 2026-11, got {raw!r}") from exc
    following = (first + timedelta(days=32)).replace(day=1)
    f = StatsFilter(
        since=first,
        until=following - timedelta(days=1),
        department=query.get("department") or None,
    )
    return first.strftime("%Y-%m"), f


def _short(department: str) -> str:
    # 网格服务站（城管、物业、消防联动） -> 网格服务站: the axis has little room.
    return department.split("（")[0].split("(")[0]


def _labeller(call: Call) -> Callable[[str], str]:
    ws = call.workspace

    def label(name: str) -> str:
        return ws.kind_label(name) if f"kind.{name}" in ws.core.replies else name

    return label


def draw(call: Call, figures: dict[str, Any]) -> dict[str, str]:
    label = _labeller(call)
    return {
        "per_day": charts.tickets_per_day(figures["per_day"], label),
        "rates": charts.rates_by_department(figures["by_department"], _short),
        "months": charts.rates_by_month(figures["by_department_month"], _short),
        "medians": charts.medians_by_department(figures["by_department"], _short),
        "overdue": charts.overdue_by_department(figures["by_department"], _short),
        "topics": charts.top_topics(figures["top_topics"], label),
    }


def _departments(call: Call) -> list[str]:
    scope = call.user.departments
    return call.workspace.departments if scope is None else sorted(scope)


def dashboard(call: Call, render: Callable[..., HTMLResponse]) -> Response:
    f = stats_filter(call.query, default_days=30)
    figures = call.workspace.stats(call.user, f)
    response = render(
        "dashboard.html",
        user=call.user,
        ws=call.workspace,
        may_volunteers=call.workspace.may_see_volunteers(call.user),
        s=figures,
        f=f,
        days=call.query.get("days") or ("" if call.query.get("since") else "30"),
        ranges=RANGES,
        departments=_departments(call),
        charts=draw(call, figures),
        label=_labeller(call),
    )
    response.headers["content-security-policy"] = DASHBOARD_CSP.decode()
    return response


def report_page(call: Call, render: Callable[..., HTMLResponse]) -> Response:
    month, f = month_filter(call.query)
    figures = call.workspace.stats(call.user, f)
    return render(
        "report.html",
        user=call.user,
        ws=call.workspace,
        may_volunteers=call.workspace.may_see_volunteers(call.user),
        s=figures,
        month=month,
        f=f,
        departments=_departments(call),
        label=_labeller(call),
    )


def _pct(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.1%}"


def _hours(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def report_rows(figures: dict[str, Any]) -> list[list[Any]]:
    """One line per department, then the total: the monthly report's table."""
    rows = []
    for d in figures["by_department"]:
        rows.append(
            [
                d["department"],
                d["total"],
                d["completed"],
                _pct(d["completion_rate"]),
                _pct(d["satisfaction_rate"]),
                d["satisfaction_answers"],
                d["overdue"],
                _hours(d["median_hours_to_first_response"]),
                _hours(d["median_hours_to_resolve"]),
            ]
        )
    rows.append(
        [
            "合计",
            figures["total"],
            figures["completed"],
            _pct(figures["completion_rate"]),
            _pct(figures["satisfaction_rate"]),
            figures["satisfaction_answers"],
            figures["overdue"],
            _hours(figures["median_hours_to_first_response"]),
            _hours(figures["median_hours_to_resolve"]),
        ]
    )
    return rows


REPORT_HEADERS = (
    "部门",
    "工单数",
    "已办结",
    "办结率",
    "满意率",
    "回访答复数",
    "当前超时",
    "首次响应中位数（小时）",
    "办结中位数（小时）",
)


def report_xlsx(call: Call) -> Response:
    month, f = month_filter(call.query)
    figures = call.workspace.stats(call.user, f)
    label = _labeller(call)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "月报"
    sheet.append([f"同心 · {month} 服务月报" + (f"（{f.department}）" if f.department else "")])
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.append([])
    sheet.append(list(REPORT_HEADERS))
    for row in report_rows(figures):
        sheet.append(row)
    sheet.append([])
    sheet.append(["类型", "工单数"])
    for kind, n in figures["by_kind"].items():
        sheet.append([label(kind), n])
    sheet.append([])
    sheet.append(["满意", "基本满意", "不满意", "升级督办"])
    answers = figures["satisfaction"]
    sheet.append(
        [answers["satisfied"], answers["neutral"], answers["unsatisfied"], figures["escalated"]]
    )
    sheet.column_dimensions["A"].width = 36
    for col in "BCDEFGHI":
        sheet.column_dimensions[col].width = 16
    out = io.BytesIO()
    book.save(out)
    return Response(
        out.getvalue(),
        media_type=XLSX,
        headers={"Content-Disposition": f'attachment; filename="report-{month}.xlsx"'},
    )


def routes(
    ctx: Context, render: Callable[..., HTMLResponse], err: Callable[[int, str], Response]
) -> list[BaseRoute]:
    return [
        Route("/dashboard", page(ctx, lambda call: dashboard(call, render), err), methods=["GET"]),
        Route("/report", page(ctx, lambda call: report_page(call, render), err), methods=["GET"]),
        Route("/export/report.xlsx", page(ctx, report_xlsx, err), methods=["GET"]),
    ]
