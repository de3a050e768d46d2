"""`tongxin staff ...`: accounts for the staff workspace."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from bot.cli.common import CliError, add_command, add_group
from bot.cli.store_access import open_store, print_json

if TYPE_CHECKING:
    from flows.workspace_store import WorkspaceStore


def register(sub: Any) -> None:
    ssub = add_group(
        sub,
        "staff",
        "staff workspace accounts",
        "Accounts for the staff workspace (/staff/). Passwords are read from stdin "
        "(first line) when it is not a terminal, else prompted twice.",
        "echo 'a long password' | tongxin staff add 王律师 --role staff --department legal_aid",
    )
    p = add_command(
        ssub,
        "add",
        "create an account: admin sees all, staff one department, viewer reads only",
        "tongxin staff add 王律师 --role staff --department 法律服务工作站",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--role", required=True, choices=("admin", "staff", "viewer"))
    p.add_argument(
        "--department", help="the desk as named in data/routing.yml (or a ticket kind routed there)"
    )
    p.set_defaults(handler=cmd_add)

    p = add_command(ssub, "list", "list accounts", "tongxin staff list --json")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(handler=cmd_list)

    p = add_command(
        ssub, "disable", "disable an account and end its sessions", "tongxin staff disable 王律师"
    )
    p.add_argument("name", metavar="NAME")
    p.set_defaults(handler=cmd_disable)

    p = add_command(
        ssub,
        "passwd",
        "set a new password (ends the account's sessions)",
        "tongxin staff passwd 王律师",
    )
    p.add_argument("name", metavar="NAME")
    p.set_defaults(handler=cmd_passwd)


@contextmanager
def _workspace(args: argparse.Namespace) -> Iterator[WorkspaceStore]:
    from flows.workspace_store import AccountError, WorkspaceStore

    with open_store(args) as store:
        try:
            yield WorkspaceStore(store)
        except AccountError as exc:
            raise CliError(str(exc)) from exc


def read_password() -> str:
    """First line of stdin when it is not a terminal; else asked twice."""
    if not sys.stdin.isatty():
        line = sys.stdin.buffer.readline().decode("utf-8", errors="replace")
        password = line.rstrip("\r\n")
        if not password:
            raise CliError("no password on the first line of stdin")
        return password
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise CliError("the passwords differ")
    return first


def cmd_add(args: argparse.Namespace) -> int:
    from bot.cli.common import bot_settings
    from bot.workspace.accounts import add_account, load_routing

    routing = load_routing(bot_settings(args).data_dir)
    password = read_password()
    with _workspace(args) as ws:
        account = add_account(ws, args.name, password, args.role, args.department, routing)
    where = f" ({account.department})" if account.department else ""
    print(f"added {account.username}: {account.role}{where}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from flows.staff import format_table, local_time

    with _workspace(args) as ws:
        accounts = ws.list_accounts()
    if args.json:
        print_json([a.to_dict() for a in accounts])
        return 0
    if not accounts:
        print("no staff accounts")
        return 0
    rows = [
        [
            a.username,
            a.role,
            a.department or "-",
            "disabled" if a.disabled else "active",
            local_time(a.created_at),
        ]
        for a in accounts
    ]
    print(format_table(["name", "role", "department", "state", "created"], rows), end="")
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    with _workspace(args) as ws:
        ws.disable(args.name)
    print(f"disabled {args.name}; its sessions ended")
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    from bot.workspace.accounts import set_password

    password = read_password()
    with _workspace(args) as ws:
        set_password(ws, args.name, password)
    print(f"new password for {args.name}; its sessions ended")
    return 0
