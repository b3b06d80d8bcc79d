"""Pure decoder of PostgreSQL's pgoutput logical replication protocol, version 1.

The replication thread feeds each ``XLogData`` payload to :func:`decode_message`, and
:class:`TransactionAssembler` turns the resulting stream into whole transactions, each a list of
:class:`RowChange` carrying the :class:`Relation` it belongs to and its column values as
PostgreSQL text (``None`` for SQL NULL, :data:`UNCHANGED` for an unchanged TOASTed value).

Message layouts: PostgreSQL documentation, "Logical Replication Message Formats".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)


class DecodeError(Exception):
    """The bytes are not a pgoutput v1 message this decoder understands."""


class _Unchanged:
    """Marker for a TOASTed column value that the update did not touch (not in the WAL)."""

    _instance: _Unchanged | None = None

    def __new__(cls) -> _Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = _Unchanged()

Value = str | None | _Unchanged
Tuple = tuple[Value, ...]
ChangeKind = Literal["INSERT", "UPDATE", "DELETE"]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_oid: int
    type_modifier: int
    is_key: bool


@dataclass(frozen=True, slots=True)
class Relation:
    """A table as announced by a Relation message (sent before its first change per session)."""

    id: int
    schema: str
    name: str
    replica_identity: str  # d(efault), n(othing), f(ull), i(ndex)
    columns: tuple[Column, ...]

    @property
    def key_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.is_key)


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int
    commit_time: datetime
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_time: datetime


@dataclass(frozen=True, slots=True)
class Origin:
    lsn: int
    name: str


@dataclass(frozen=True, slots=True)
class TypeInfo:
    oid: int
    schema: str
    name: str


@dataclass(frozen=True, slots=True)
class Insert:
    relation_id: int
    new: Tuple


@dataclass(frozen=True, slots=True)
class Update:
    relation_id: int
    new: Tuple
    old: Tuple | None = None
    old_is_key_only: bool = False


@dataclass(frozen=True, slots=True)
class Delete:
    relation_id: int
    old: Tuple
    old_is_key_only: bool


@dataclass(frozen=True, slots=True)
class Truncate:
    relation_ids: tuple[int, ...]
    options: int


@dataclass(frozen=True, slots=True)
class LogicalMessage:
    transactional: bool
    lsn: int
    prefix: str
    content: bytes


Message = (
    Begin
    | Commit
    | Origin
    | Relation
    | TypeInfo
    | Insert
    | Update
    | Delete
    | Truncate
    | LogicalMessage
)


class _Reader:
    """Cursor over one message's bytes, big-endian as the protocol requires."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def _take(self, size: int) -> memoryview:
        end = self.pos + size
        if end > len(self.data):
            raise DecodeError(f"message truncated at byte {self.pos} (wanted {size} more)")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def byte(self) -> str:
        return chr(self._take(1)[0])

    def int8(self) -> int:
        return self._take(1)[0]

    def int16(self) -> int:
        return struct.unpack(">h", self._take(2))[0]

    def int32(self) -> int:
        return struct.unpack(">i", self._take(4))[0]

    def uint32(self) -> int:
        return struct.unpack(">I", self._take(4))[0]

    def int64(self) -> int:
        return struct.unpack(">q", self._take(8))[0]

    def uint64(self) -> int:
        return struct.unpack(">Q", self._take(8))[0]

    def timestamp(self) -> datetime:
        return PG_EPOCH + timedelta(microseconds=self.int64())

    def string(self) -> str:
        end = bytes(self.data[self.pos :]).find(b"\0")
        if end < 0:
            raise DecodeError(f"unterminated string at byte {self.pos}")
        text = bytes(self._take(end)).decode()
        self.pos += 1
        return text

    def raw(self, size: int) -> bytes:
        return bytes(self._take(size))

    def tuple_data(self) -> Tuple:
        values: list[Value] = []
        for _ in range(self.int16()):
            kind = self.byte()
            if kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED)
            elif kind == "t":
                values.append(self.raw(self.int32()).decode())
            else:
                raise DecodeError(f"unsupported tuple value kind {kind!r}")
        return tuple(values)


def decode_message(data: bytes) -> Message:
    """Decode one pgoutput message (the payload of one XLogData frame).

    Raises:
        DecodeError: for truncated data or a message type outside protocol version 1.
    """
    reader = _Reader(data)
    kind = reader.byte()
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise DecodeError(f"unknown pgoutput message type {kind!r}")
    return decoder(reader)


def _begin(r: _Reader) -> Begin:
    return Begin(final_lsn=r.uint64(), commit_time=r.timestamp(), xid=r.uint32())


def _commit(r: _Reader) -> Commit:
    return Commit(
        flags=r.int8(), commit_lsn=r.uint64(), end_lsn=r.uint64(), commit_time=r.timestamp()
    )


def _origin(r: _Reader) -> Origin:
    return Origin(lsn=r.uint64(), name=r.string())


def _relation(r: _Reader) -> Relation:
    relation_id, schema, name, identity = r.uint32(), r.string(), r.string(), r.byte()
    columns = []
    for _ in range(r.int16()):
        flags, col_name, type_oid, type_modifier = r.int8(), r.string(), r.uint32(), r.int32()
        columns.append(Column(col_name, type_oid, type_modifier, bool(flags & 1)))
    return Relation(relation_id, schema, name, identity, tuple(columns))


def _type(r: _Reader) -> TypeInfo:
    return TypeInfo(oid=r.uint32(), schema=r.string(), name=r.string())


def _insert(r: _Reader) -> Insert:
    relation_id = r.uint32()
    if (marker := r.byte()) != "N":
        raise DecodeError(f"insert without new tuple (marker {marker!r})")
    return Insert(relation_id, r.tuple_data())


def _update(r: _Reader) -> Update:
    relation_id = r.uint32()
    marker = r.byte()
    old: Tuple | None = None
    if marker in ("K", "O"):
        old = r.tuple_data()
        key_only = marker == "K"
        marker = r.byte()
    else:
        key_only = False
    if marker != "N":
        raise DecodeError(f"update without new tuple (marker {marker!r})")
    return Update(relation_id, r.tuple_data(), old, key_only)


def _delete(r: _Reader) -> Delete:
    relation_id = r.uint32()
    marker = r.byte()
    if marker not in ("K", "O"):
        raise DecodeError(f"delete without old tuple (marker {marker!r})")
    return Delete(relation_id, r.tuple_data(), marker == "K")


def _truncate(r: _Reader) -> Truncate:
    count, options = r.int32(), r.int8()
    return Truncate(tuple(r.uint32() for _ in range(count)), options)


def _message(r: _Reader) -> LogicalMessage:
    flags, lsn, prefix = r.int8(), r.uint64(), r.string()
    return LogicalMessage(bool(flags & 1), lsn, prefix, r.raw(r.int32()))


_DECODERS = {
    "B": _begin,
    "C": _commit,
    "O": _origin,
    "R": _relation,
    "Y": _type,
    "I": _insert,
    "U": _update,
    "D": _delete,
    "T": _truncate,
    "M": _message,
}


@dataclass(frozen=True, slots=True)
class RowChange:
    """One row-level change, with its relation as it was when the change was decoded."""

    kind: ChangeKind
    relation: Relation
    new: Tuple | None
    old: Tuple | None
    old_is_key_only: bool


@dataclass(slots=True)
class Transaction:
    """A committed transaction's row changes, in WAL order."""

    xid: int
    commit_lsn: int
    end_lsn: int
    commit_time: datetime
    changes: list[RowChange] = field(default_factory=list)


class TransactionAssembler:
    """Group a decoded pgoutput stream into committed transactions.

    Relation messages are remembered for the life of the replication session (the server only
    re-sends one when the table changed or the session is new). TRUNCATE is dropped, as the real
    Realtime never delivers it.
    """

    def __init__(self) -> None:
        self.relations: dict[int, Relation] = {}
        self._current: Transaction | None = None

    @property
    def in_transaction(self) -> bool:
        """True between a Begin and its Commit."""
        return self._current is not None

    def feed(self, data: bytes) -> Transaction | None:
        """Consume one message; return the transaction it completes, if any."""
        message = decode_message(data)
        if isinstance(message, Relation):
            self.relations[message.id] = message
        elif isinstance(message, Begin):
            self._current = Transaction(message.xid, message.final_lsn, 0, message.commit_time)
        elif isinstance(message, Commit):
            return self._commit(message)
        elif isinstance(message, Insert):
            self._add("INSERT", message.relation_id, message.new, None, False)
        elif isinstance(message, Update):
            self._add(
                "UPDATE", message.relation_id, message.new, message.old, message.old_is_key_only
            )
        elif isinstance(message, Delete):
            self._add("DELETE", message.relation_id, None, message.old, message.old_is_key_only)
        return None

    def _add(
        self, kind: ChangeKind, relation_id: int, new: Tuple | None, old: Tuple | None, key: bool
    ) -> None:
        if self._current is None:
            raise DecodeError(f"{kind.lower()} outside a transaction")
        relation = self.relations.get(relation_id)
        if relation is None:
            raise DecodeError(f"change for unknown relation {relation_id}")
        self._current.changes.append(RowChange(kind, relation, new, old, key))

    def _commit(self, message: Commit) -> Transaction:
        transaction = self._current
        if transaction is None:
            raise DecodeError("commit outside a transaction")
        self._current = None
        transaction.commit_lsn = message.commit_lsn
        transaction.end_lsn = message.end_lsn
        transaction.commit_time = message.commit_time
        return transaction
