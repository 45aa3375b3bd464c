"""The audit log: append-only, an RFC 6962 Merkle tree with signed checkpoints.

Each entry is canonical JSON (sorted keys, no whitespace) holding its own sequence number.
Rows also keep a running chain hash, so that verification can name the first entry that was
changed, removed or moved; checkpoints (size, root, time, Ed25519 signature) prove what the
log held when they were signed, and a truncated tail shows as a checkpoint larger than the
log. Personal data goes into entries encrypted by the caller (under the subject's key), so an
erasure shreds it without changing a byte of the log.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import msgspec
from sqlalchemy import Table, func, insert, select
from sqlalchemy.engine import Connection

from bus import Database, as_utc, insert_many, run_one, stored_time
from observability._merkle import CompactRange, MerkleTree, leaf_hash, prefix_roots
from observability._tables import AuditCheckpointRow, AuditEntryRow

_entries = cast(Table, AuditEntryRow.__table__)
_checkpoints = cast(Table, AuditCheckpointRow.__table__)
_GENESIS = b"\x00" * 32

Sign = Callable[[bytes], tuple[str, bytes]]  # message -> (key id, signature)
VerifySignature = Callable[[str, bytes, bytes], bool]  # key id, message, signature


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def b64url(data: bytes) -> str:
    """Signatures are base64url without padding, as receipts' and keys' are."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def checkpoint_message(tree_size: int, root: bytes, signed_at: datetime) -> bytes:
    """What a checkpoint signature covers."""
    at = signed_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return canonical({"tree_size": tree_size, "root": root.hex(), "signed_at": at})


class Verification(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    size: int
    checkpoints: int
    # entries after the latest checkpoint: deleting them would not show (README, Audit log)
    uncovered: int = 0
    first_bad: int | None = None
    problem: str | None = None


class AuditLog:
    def __init__(self, database: Database, sign: Sign, verify_signature: VerifySignature) -> None:
        self._db = database
        self._sign = sign
        self._verify_signature = verify_signature
        # the tree of the latest checkpoint asked for: pages of proofs share one build
        self._tree: MerkleTree | None = None
        # the log's root as of the last checkpoint this process signed, grown from there
        self._head = CompactRange()

    async def append(self, kind: str, actor: str, details: dict[str, Any]) -> int:
        """Add an entry; returns its sequence number (from 1)."""
        return await self._db.transaction(self.entry(kind, actor, details))

    def entry(self, kind: str, actor: str, details: dict[str, Any]) -> Callable[[Connection], int]:
        """The entry as work for a transaction of the caller's (it commits with the change it
        records); its sequence number and time are taken there."""
        return lambda conn: _append(conn, kind, actor, details, datetime.now(UTC))

    async def checkpoint(self) -> int | None:
        """Sign the current tree head if the log grew since the last one; its size or None."""
        return await self._db.transaction(self._checkpoint)

    async def verify(self) -> Verification:
        return await self._db.read(self._verify)

    async def entries(
        self, *, kind: str | None = None, after: int = 0, limit: int = 100
    ) -> list[dict[str, Any]]:
        query = select(_entries).where(_entries.c.seq > after).order_by(_entries.c.seq)
        if kind:
            query = query.where(_entries.c.kind == kind)
        rows = await self._db.read(lambda conn: conn.execute(query.limit(limit)).all())
        return [
            {"seq": row.seq, "entry": json.loads(row.entry), "leaf_hash": row.leaf_hash.hex()}
            for row in rows
        ]

    async def latest_checkpoint(self) -> dict[str, Any] | None:
        query = select(_checkpoints).order_by(_checkpoints.c.tree_size.desc()).limit(1)
        row = await self._db.read(lambda conn: conn.execute(query).first())
        return None if row is None else _checkpoint_body(row)

    async def proofs(self, seqs: list[int], tree_size: int) -> dict[int, list[str]]:
        """Inclusion proofs of entries `seqs` in the tree of the first `tree_size` entries.

        The tree is built once per size, off the event loop; each proof then costs O(log n).
        """
        if not seqs or tree_size == 0:
            return {}
        tree = await self._tree_of(tree_size)

        def prove() -> dict[int, list[str]]:
            return {
                s: [h.hex() for h in tree.inclusion_proof(s - 1)]
                for s in seqs
                if 0 < s <= tree.size
            }

        return await asyncio.to_thread(prove)

    async def consistency(self, old_size: int, new_size: int) -> list[str]:
        tree = await self._tree_of(new_size)
        if tree.size < new_size:
            raise ValueError(f"the log holds fewer than {new_size} entries")
        return [h.hex() for h in tree.consistency_proof(old_size)]

    async def _tree_of(self, size: int) -> MerkleTree:
        cached = self._tree
        if cached is not None and cached.size == size:
            return cached
        leaves = await self._db.read(lambda conn: _leaves(conn, size))
        tree = await asyncio.to_thread(MerkleTree, leaves)
        if tree.size == size:
            self._tree = tree
        return tree

    def _checkpoint(self, conn: Connection) -> int | None:
        size = int(conn.execute(select(func.coalesce(func.max(_entries.c.seq), 0))).scalar_one())
        last = conn.execute(select(func.max(_checkpoints.c.tree_size))).scalar()
        if size == 0 or (last is not None and last >= size):
            return None
        head = self._head
        if head.size > size:  # the log shrank under us: verification will say so
            head = self._head = CompactRange()
        query = select(_entries.c.leaf_hash).where(_entries.c.seq > head.size)
        head.extend([bytes(row.leaf_hash) for row in conn.execute(query.order_by(_entries.c.seq))])
        if head.size != size:  # a sequence gap: sign nothing, verification names it
            self._head = CompactRange()
            return None
        root = head.root()
        signed_at = datetime.now(UTC)
        key_id, signature = self._sign(checkpoint_message(size, root, signed_at))
        conn.execute(
            insert(_checkpoints).values(
                tree_size=size, root=root, signed_at=signed_at, key_id=key_id, signature=signature
            )
        )
        return size

    def _verify(self, conn: Connection) -> Verification:
        rows = conn.execute(select(_entries).order_by(_entries.c.seq)).all()
        checkpoints = conn.execute(select(_checkpoints).order_by(_checkpoints.c.tree_size)).all()
        leaves: list[bytes] = []
        chain = _GENESIS

        def bad(seq: int, problem: str) -> Verification:
            return Verification(
                ok=False,
                size=len(rows),
                checkpoints=len(checkpoints),
                first_bad=seq,
                problem=problem,
            )

        for expected, row in enumerate(rows, start=1):
            if row.seq != expected:
                return bad(expected, f"entry {expected} is missing")
            try:
                recorded_seq = json.loads(row.entry).get("seq")
            except ValueError:
                return bad(expected, f"entry {expected} is not JSON")
            if recorded_seq != expected:
                return bad(expected, f"entry {expected} holds the entry of {recorded_seq}")
            leaf = leaf_hash(row.entry)
            if leaf != row.leaf_hash:
                return bad(expected, f"entry {expected} was changed")
            chain = hashlib.sha256(chain + leaf).digest()
            if chain != row.chain:
                return bad(expected, f"the chain breaks at entry {expected}")
            leaves.append(leaf)
        roots = prefix_roots(leaves, [point.tree_size for point in checkpoints])
        for point in checkpoints:
            body = checkpoint_message(point.tree_size, point.root, as_utc(point.signed_at))
            if not self._verify_signature(point.key_id, body, point.signature):
                return bad(point.tree_size, f"checkpoint {point.tree_size} has a bad signature")
            if point.tree_size > len(leaves):
                return bad(
                    len(leaves) + 1,
                    f"checkpoint {point.tree_size} covers entries the log no longer has",
                )
            if roots.get(point.tree_size) != point.root:
                return bad(point.tree_size, f"the root of checkpoint {point.tree_size} differs")
        covered = max((point.tree_size for point in checkpoints), default=0)
        return Verification(
            ok=True, size=len(rows), checkpoints=len(checkpoints), uncovered=len(rows) - covered
        )


# An append runs inside the commits of consent writes, on their hot path: both statements go
# straight to the driver (SQLAlchemy's statement processing cost more than running them).
_ENTRY_COLUMNS = ("seq", "entry", "leaf_hash", "chain", "kind", "created_at")
_LOCK_LOG = f"LOCK TABLE {_entries.name} IN EXCLUSIVE MODE"
_LAST_ENTRY = f"SELECT seq, chain FROM {_entries.name} ORDER BY seq DESC LIMIT 1"  # noqa: S608


def _append(conn: Connection, kind: str, actor: str, details: dict[str, Any], now: datetime) -> int:
    if conn.dialect.name == "postgresql":
        run_one(conn, _LOCK_LOG)
    last = run_one(conn, _LAST_ENTRY).fetchone()
    seq = 1 if last is None else last[0] + 1
    entry = canonical(
        {
            "seq": seq,
            "at": now.isoformat().replace("+00:00", "Z"),
            "kind": kind,
            "actor": actor,
            "details": details,
        }
    )
    leaf = leaf_hash(entry)
    chain = hashlib.sha256((_GENESIS if last is None else bytes(last[1])) + leaf).digest()
    insert_many(
        conn,
        _entries,
        _ENTRY_COLUMNS,
        [(seq, entry, leaf, chain, kind, stored_time(conn, now))],
    )
    return seq


def _leaves(conn: Connection, size: int) -> list[bytes]:
    query = select(_entries.c.leaf_hash).order_by(_entries.c.seq).limit(size)
    return [bytes(row.leaf_hash) for row in conn.execute(query)]


def _checkpoint_body(row: Any) -> dict[str, Any]:
    return {
        "tree_size": row.tree_size,
        "root": row.root.hex(),
        "signed_at": as_utc(row.signed_at).isoformat().replace("+00:00", "Z"),
        "key_id": row.key_id,
        "signature": b64url(row.signature),
    }
