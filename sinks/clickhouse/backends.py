"""The two ClickHouse backends behind one interface: a server over the native protocol, and chdb.

Both qualify every table with the configured database and raise only two errors:
`ClickHouseUnavailable` (down, slow or overloaded: retry later) and `ClickHouseQueryError`
(the statement itself is wrong: retrying will not help).
"""

from __future__ import annotations

import re
import struct
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import pyarrow as pa
from clickhouse_driver import Client
from clickhouse_driver.errors import Error as DriverError
from clickhouse_driver.errors import NetworkError, ServerException, SocketTimeoutError

from liveward.settings import Settings
from sinks.errors import ClickHouseQueryError, ClickHouseUnavailable

Row = Sequence[Any]

# Server error codes that describe load or a transient state rather than a bad statement:
# TIMEOUT_EXCEEDED, TOO_MANY_SIMULTANEOUS_QUERIES, NO_FREE_CONNECTION, SOCKET_TIMEOUT,
# NETWORK_ERROR, ABORTED, MEMORY_LIMIT_EXCEEDED, TABLE_IS_READ_ONLY, TOO_MANY_PARTS,
# QUERY_WAS_CANCELLED.
RETRYABLE_CODES = frozenset({159, 202, 203, 209, 210, 236, 241, 242, 252, 394})

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ERROR_CODE = re.compile(r"Code: (\d+)\.")


def quote_identifier(name: str) -> str:
    """`name` in backquotes, after checking it is a plain identifier (no quoting games)."""
    if not _IDENTIFIER.match(name):
        raise ClickHouseQueryError(f"{name!r} is not a plain ClickHouse identifier")
    return f"`{name}`"


def quote_string(value: str) -> str:
    """A ClickHouse string literal for `value`."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class ClickHouseBackend(Protocol):
    """What the sink, migrations and retention need from ClickHouse, whichever runs it."""

    @property
    def database(self) -> str: ...

    @property
    def name(self) -> str: ...

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        """Run one statement; the result rows as tuples (empty for DDL)."""
        ...

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> int:
        """Insert rows (tuples in `columns` order) into `database.table`; rows written."""
        ...

    def close(self) -> None: ...


def qualified(backend: ClickHouseBackend, table: str) -> str:
    """`database`.`table` for the backend's database."""
    return f"{quote_identifier(backend.database)}.{quote_identifier(table)}"


def insert_statement(backend: ClickHouseBackend, table: str, columns: Sequence[str]) -> str:
    names = ", ".join(quote_identifier(c) for c in columns)
    return f"INSERT INTO {qualified(backend, table)} ({names})"


class NativeBackend:
    """A ClickHouse server (18.16 and newer) over the native TCP protocol via clickhouse-driver.

    One connection, used by one thread at a time (the driver is not thread-safe; a lock
    makes misuse safe rather than fast). The driver drops the connection on any error,
    so the call after a failure reconnects.
    """

    name = "server"

    def __init__(self, settings: Settings, *, timeout: float = 10.0) -> None:
        ch = settings.clickhouse
        self._database = ch.database
        self._address = f"{ch.host}:{ch.native_port}"
        self._lock = threading.Lock()
        # No database in the connection: it does not exist until the migrations create it.
        self._client = Client(
            host=ch.host,
            port=ch.native_port,
            user=ch.user,
            password=ch.password.get_secret_value(),
            connect_timeout=min(timeout, 3.0),
            send_receive_timeout=timeout,
            sync_request_timeout=timeout,
            settings={"insert_block_size": 1_048_576},
        )

    @property
    def database(self) -> str:
        return self._database

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._call(sql, None))

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> int:
        if not rows:
            return 0
        statement = f"{insert_statement(self, table, columns)} VALUES"
        with self._lock:
            return int(self._call(statement, rows))

    def close(self) -> None:
        with self._lock:
            self._client.disconnect()

    def _call(self, sql: str, rows: Sequence[Row] | None) -> Any:
        try:
            if rows is None:
                return self._client.execute(sql)
            return self._client.execute(sql, rows)
        except ServerException as exc:
            if exc.code in RETRYABLE_CODES:
                raise ClickHouseUnavailable(
                    f"ClickHouse at {self._address} is overloaded: {exc.message}"
                ) from exc
            raise ClickHouseQueryError(f"ClickHouse rejected the statement: {exc.message}") from exc
        except (NetworkError, SocketTimeoutError, EOFError, OSError) as exc:
            raise ClickHouseUnavailable(
                f"ClickHouse at {self._address} is unreachable: {exc}"
            ) from exc
        except DriverError as exc:
            raise ClickHouseQueryError(f"cannot send the statement: {exc}") from exc
        except (TypeError, ValueError, OverflowError, struct.error) as exc:
            # The driver serialises rows column by column and reports a bad value this way.
            raise ClickHouseQueryError(f"a value does not fit its column: {exc}") from exc


class EmbeddedBackend:
    """ClickHouse inside this process (chdb), keeping its data at `settings.chdb_path`.

    chdb holds one data path per process: while this backend is open no other path can
    be opened, and another process cannot open this one. Rows go in as one Arrow IPC
    stream per batch through chdb's streaming insert, typed from the table's columns.
    """

    name = "embedded"

    def __init__(self, settings: Settings, *, path: Path | None = None) -> None:
        from chdb.session import Session

        self._database = settings.clickhouse.database
        self.path = path or settings.chdb_path
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._arrow_types: dict[str, dict[str, pa.DataType]] = {}
        try:
            # chdb ships py.typed without annotations; Any keeps strict mypy meaningful elsewhere.
            self._session: Any = cast(Any, Session)(str(self.path))
        except RuntimeError as exc:
            raise ClickHouseUnavailable(
                f"cannot open the chdb data path {self.path}: {exc}"
            ) from exc

    @property
    def database(self) -> str:
        return self._database

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                table = self._session.query(sql, "ArrowTable")
            except RuntimeError as exc:
                raise _chdb_error(exc) from exc
        if table.num_columns == 0:
            return []
        return list(zip(*(column.to_pylist() for column in table.columns), strict=True))

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> int:
        if not rows:
            return 0
        types = self._column_types(table)
        try:
            arrays = [
                pa.array(values, type=types.get(name))
                for name, values in zip(columns, zip(*rows, strict=True), strict=True)
            ]
        except (pa.ArrowException, ValueError, TypeError, OverflowError) as exc:
            raise ClickHouseQueryError(f"rows do not fit the columns of {table}: {exc}") from exc
        batch = pa.RecordBatch.from_arrays(arrays, names=list(columns))
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        payload = sink.getvalue().to_pybytes()
        with self._lock:
            try:
                with self._session.send_insert(
                    insert_statement(self, table, columns), "ArrowStream"
                ) as inserter:
                    inserter.append(payload)
                    inserter.finish()
            except RuntimeError as exc:
                self._arrow_types.pop(table, None)
                raise _chdb_error(exc) from exc
        # Not finish().rows_written: it also counts rows that materialized views wrote.
        return len(rows)

    def close(self) -> None:
        with self._lock:
            self._session.close()

    def _column_types(self, table: str) -> dict[str, pa.DataType]:
        """Arrow types for the table's columns, so an all-NULL or all-bool column still fits."""
        if table not in self._arrow_types:
            rows = self.execute(
                "SELECT name, type FROM system.columns "
                f"WHERE database = {quote_string(self.database)} AND table = {quote_string(table)}"
            )
            if not rows:
                raise ClickHouseQueryError(f"table {self.database}.{table} does not exist")
            self._arrow_types[table] = {
                str(name): arrow_type(str(ch_type)) for name, ch_type in rows
            }
        return self._arrow_types[table]


_ARROW_TYPES: dict[str, pa.DataType] = {
    "String": pa.string(),
    "UInt8": pa.uint8(),
    "UInt16": pa.uint16(),
    "UInt32": pa.uint32(),
    "UInt64": pa.uint64(),
    "Int8": pa.int8(),
    "Int16": pa.int16(),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
    "Float32": pa.float32(),
    "Float64": pa.float64(),
}
_WRAPPER = re.compile(r"^(?:Nullable|LowCardinality)\((.*)\)$")


def arrow_type(clickhouse_type: str) -> pa.DataType:
    """The Arrow type to send for a ClickHouse column type (nullability comes from the data)."""
    inner = clickhouse_type
    while match := _WRAPPER.match(inner):
        inner = match.group(1)
    if inner.startswith("Enum"):
        return pa.string()
    try:
        return _ARROW_TYPES[inner]
    except KeyError as exc:
        raise ClickHouseQueryError(
            f"the embedded backend cannot insert into a {clickhouse_type} column"
        ) from exc


def _chdb_error(exc: RuntimeError) -> ClickHouseUnavailable | ClickHouseQueryError:
    match = _ERROR_CODE.search(str(exc))
    if match is not None and int(match.group(1)) in RETRYABLE_CODES:
        return ClickHouseUnavailable(f"chdb is overloaded: {exc}")
    return ClickHouseQueryError(f"chdb rejected the statement: {exc}")


def backend_for(settings: Settings) -> ClickHouseBackend:
    """The backend `settings.clickhouse.backend` names: `server` or `embedded`."""
    if settings.clickhouse.backend == "server":
        return NativeBackend(settings)
    return EmbeddedBackend(settings)
