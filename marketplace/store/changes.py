"""Row changes declared rather than executed, so a writer can merge a batch of them.

An actor describes a state change as a ``Changes``: upserts and inserts, in order, with the
change's events for the outbox. The ``Writer`` commits every change queued while its previous
transaction ran in one transaction (group commit); ``apply_all`` also merges their statements,
so thirty reservations become one ``executemany`` per table instead of ninety statements. Each
statement then costs one compilation and one trip to the database driver per batch rather than
per change, which is most of what a write used to cost (see ``marketplace.bench.writer``).

Merging keeps the outcome of applying the changes one after another: rows of one table keep
their order, an upsert keeps the last row for each key, and a table whose statement shape
changes (another column set, insert after upsert) starts a new segment, so nothing overtakes a
row it followed. Tables have no foreign keys or triggers, so the order *between* tables inside a
segment does not matter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import Dialect, Executable, Table, TextClause, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from marketplace.domain.events import DomainEvent
from marketplace.store.rows import envelope
from marketplace.store.tables import outbox

Kind = Literal["upsert", "insert"]


@dataclass(frozen=True)
class _Op:
    kind: Kind
    table: Table
    keys: tuple[str, ...]
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]


class Changes:
    """An ordered list of row writes that commit together (one state change of an actor)."""

    __slots__ = ("ops",)

    def __init__(self) -> None:
        self.ops: list[_Op] = []

    def upsert(
        self, table: Table, rows: Iterable[Mapping[str, Any]], keys: Sequence[str]
    ) -> Changes:
        """Insert ``rows``, overwriting those whose ``keys`` already exist."""
        return self._add("upsert", table, rows, tuple(keys))

    def insert(self, table: Table, rows: Iterable[Mapping[str, Any]]) -> Changes:
        """Insert ``rows`` (a duplicate key fails the change)."""
        return self._add("insert", table, rows, ())

    def events(self, source: str, events: Iterable[DomainEvent]) -> Changes:
        """Append events to the outbox in the same transaction as the rest (invariant I4)."""
        return self.insert(outbox, [envelope(source, event) for event in events])

    def __bool__(self) -> bool:
        return bool(self.ops)

    async def apply(self, conn: AsyncConnection) -> None:
        """Execute these changes in the caller's transaction."""
        await apply_all(conn, [self])

    def __repr__(self) -> str:
        return f"Changes({', '.join(f'{op.kind} {op.table.name}' for op in self.ops)})"

    def _add(
        self, kind: Kind, table: Table, rows: Iterable[Mapping[str, Any]], keys: tuple[str, ...]
    ) -> Changes:
        values = [dict(row) for row in rows]
        if not values:
            return self
        columns = tuple(values[0])
        if any(tuple(row) != columns for row in values):
            raise ValueError(f"rows for {table.name} must all name the same columns, in order")
        missing = [key for key in keys if key not in columns]
        if missing:
            raise ValueError(f"upsert keys {missing} are not among the columns of the rows")
        self.ops.append(_Op(kind, table, keys, columns, values))
        return self


@dataclass
class _Group:
    op: _Op
    rows: list[dict[str, Any]] = field(default_factory=list)

    def same_shape(self, op: _Op) -> bool:
        first = self.op
        return (first.kind, first.keys, first.columns) == (op.kind, op.keys, op.columns)

    def rows_to_write(self) -> list[dict[str, Any]]:
        if self.op.kind == "insert":
            return self.rows
        # Only the last row of each key is written: applied one by one, it would win anyway.
        latest = {tuple(row[key] for key in self.op.keys): row for row in self.rows}
        return list(latest.values())

    def statement(self) -> tuple[Executable, list[dict[str, Any]]]:
        op = self.op
        if op.kind == "insert":
            return op.table.insert(), self.rows_to_write()
        return upsert_statement(op.table, op.columns, op.keys), self.rows_to_write()

    def sqlite(self, dialect: Dialect) -> tuple[str, list[tuple[Any, ...]]]:
        op = self.op
        sql, processors = _sqlite_form(op.kind, op.table, op.columns, op.keys, dialect)
        bound = [
            tuple(
                value if process is None else process(value)
                for process, value in zip(processors, map(row.__getitem__, op.columns), strict=True)
            )
            for row in self.rows_to_write()
        ]
        return sql, bound


def _groups(changes: Iterable[Changes], merge: bool) -> list[_Group]:
    """The statements executing ``changes`` in order takes, as groups of same-shaped rows."""
    planned: list[_Group] = []
    segment: dict[str, _Group] = {}
    for change in changes:
        for op in change.ops:
            group = segment.get(op.table.name)
            if group is not None and not group.same_shape(op):
                planned.extend(segment.values())
                segment, group = {}, None
            if group is None:
                group = segment[op.table.name] = _Group(op)
            group.rows.extend(op.rows)
        if not merge:
            planned.extend(segment.values())
            segment = {}
    planned.extend(segment.values())
    return planned


def statements(
    changes: Iterable[Changes], *, merge: bool = True
) -> list[tuple[Executable, list[dict[str, Any]]]]:
    """What executing ``changes`` in order takes: (statement, rows for executemany) pairs.

    Merged (the default): one pair per table and segment, see the module doc. Unmerged: one
    pair per write, the cost ``marketplace.bench.writer`` compares against.
    """
    return [group.statement() for group in _groups(changes, merge)]


def sqlite_statements(
    changes: Iterable[Changes], dialect: Dialect, *, merge: bool = True
) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """``statements`` as SQLite text with positional parameters, already bound through each
    column's type (timestamps and JSON as SQLAlchemy would store them), for the driver's own
    ``executemany``.

    Everything is computed before the transaction begins, so SQLite's one write lock, which
    every actor process queues for, is held only while SQLite itself works: Python code run
    under it also waits for its process's GIL and for a core, and stretched every writer's hold.
    """
    return [group.sqlite(dialect) for group in _groups(changes, merge)]


async def apply_all(
    conn: AsyncConnection, changes: Iterable[Changes], *, merge: bool = True
) -> None:
    """Execute ``changes`` in order (merged unless told not to) in the caller's transaction."""
    for statement, rows in statements(changes, merge=merge):
        await conn.execute(statement, rows)


@lru_cache(maxsize=256)
def upsert_statement(table: Table, columns: tuple[str, ...], keys: tuple[str, ...]) -> TextClause:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE`` of ``columns``, as one cacheable statement.

    SQLAlchemy's dialect ``Insert`` with ``on_conflict_do_update`` opts out of its compiled
    cache, so every execution compiled it again: a large share of a small write's CPU. SQLite
    (3.24+) and PostgreSQL spell this statement the same way, so it is written once, as text
    with typed parameters (JSON and timestamps still go through their column types).
    """
    sql = _insert_sql("upsert", table, columns, keys, lambda name: f":{name}")
    return text(sql).bindparams(*(bindparam(name, type_=table.c[name].type) for name in columns))


@lru_cache(maxsize=256)
def _sqlite_form(
    kind: Kind, table: Table, columns: tuple[str, ...], keys: tuple[str, ...], dialect: Dialect
) -> tuple[str, tuple[Callable[[Any], Any] | None, ...]]:
    sql = _insert_sql(kind, table, columns, keys, lambda _: "?")
    processors = tuple(
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns
    )
    return sql, processors


def _insert_sql(
    kind: Kind,
    table: Table,
    columns: tuple[str, ...],
    keys: tuple[str, ...],
    placeholder: Callable[[str], str],
) -> str:
    """``INSERT``, or for an upsert ``INSERT ... ON CONFLICT (keys) DO UPDATE``, of ``columns``
    (SQLite 3.24+ and PostgreSQL spell it the same way)."""
    names = ", ".join(_quoted(name) for name in columns)
    values = ", ".join(placeholder(name) for name in columns)
    sql = f"INSERT INTO {_quoted(table.name)} ({names}) VALUES ({values})"
    if kind == "upsert":
        updates = ", ".join(
            f"{_quoted(name)} = excluded.{_quoted(name)}" for name in columns if name not in keys
        )
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        sql += f" ON CONFLICT ({', '.join(_quoted(key) for key in keys)}) {action}"
    return sql


def _quoted(name: str) -> str:
    if not name.isidentifier() or name.lower() != name:
        raise ValueError(f"unexpected identifier {name!r}")
    return f'"{name}"'
