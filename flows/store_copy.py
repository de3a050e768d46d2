"""Moving an office's data from one store to another (`tongxin db copy`):
SQLite to PostgreSQL when it outgrows one machine, or back. Every table the
two schemas share is copied row for row in one transaction on the target,
then verified: the same number of rows and the same checksum on both sides.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from flows.store import Store, StoreError

# Parents before children (ticket_events refers to tickets).
_FIRST: tuple[str, ...] = ("tickets",)
_BATCH = 1000


class CopyError(StoreError):
    pass


@dataclass(frozen=True)
class TableCopy:
    table: str
    rows: int
    checksum: str


def _order(tables: list[str]) -> list[str]:
    return [t for t in _FIRST if t in tables] + [t for t in tables if t not in _FIRST]


def _canonical(value: Any) -> Any:
    # PostgreSQL hands back booleans and big integers as SQLite hands back ints.
    return int(value) if isinstance(value, bool) else value


def table_checksum(store: Store, table: str, columns: list[str]) -> tuple[int, str]:
    """Row count and a SHA-256 over the rows in a backend-independent order."""
    cols = ", ".join(f'"{c}"' for c in columns)
    rows = [
        json.dumps([_canonical(r[c]) for c in columns], ensure_ascii=False, default=str)
        for r in store._rows(f"SELECT {cols} FROM {table}")
    ]
    digest = hashlib.sha256()
    for line in sorted(rows):
        digest.update(line.encode())
        digest.update(b"\n")
    return len(rows), digest.hexdigest()


def copy_store(source: Store, target: Store) -> list[TableCopy]:
    """Copy every shared table; the target must hold no rows yet."""
    if source.schema_version() != target.schema_version():
        raise CopyError(
            f"schema versions differ ({source.schema_version()} → {target.schema_version()}): "
            "run `tongxin db migrate` on both first"
        )
    shared = [t for t in source.tables() if t in set(target.tables())]
    busy = [t for t in shared if target._rows(f"SELECT 1 AS x FROM {t} LIMIT 1")]
    if busy:
        raise CopyError(
            f"the target already holds data ({', '.join(busy)}); copy into an empty one"
        )
    plan = {t: [c for c in source.columns(t) if c in set(target.columns(t))] for t in shared}
    with target.transaction():
        for table in _order(shared):
            columns = plan[table]
            cols = ", ".join(f'"{c}"' for c in columns)
            sql = f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(columns))})"
            rows = [
                tuple(r[c] for c in columns) for r in source._rows(f"SELECT {cols} FROM {table}")
            ]
            for i in range(0, len(rows), _BATCH):
                target.backend.execute_many(sql, rows[i : i + _BATCH])
            target.backend.after_bulk_insert(table)
    report = []
    for table in _order(shared):
        count, digest = table_checksum(source, table, plan[table])
        copied, copied_digest = table_checksum(target, table, plan[table])
        if (count, digest) != (copied, copied_digest):
            raise CopyError(
                f"{table}: {count} rows ({digest[:12]}) in the source, "
                f"{copied} ({copied_digest[:12]}) in the target"
            )
        report.append(TableCopy(table, count, digest))
    return report
