"""The preference study's SQLite database: pairs, raters, what each rater was shown, votes.

One file, ``study.sqlite`` in the study dir, in WAL mode: the server's writers never block its
readers, and a vote is one transaction, so a killed server loses no committed vote and leaves no
half-written one. ``UNIQUE(rater_id, pair_id)`` makes a second vote on the same pair impossible
whatever the client does.

Left/right order and pair order are pure functions of (study secret, rater id, pair id): a rater
who stops and comes back, or a restarted server, shows the same layout again.

Imports nothing heavy (no torch): ``spadelab study serve`` starts in well under a second.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

DB_NAME = "study.sqlite"
METHODS = ("a", "b")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pairs (
    id INTEGER PRIMARY KEY,
    sample_index INTEGER NOT NULL,
    label_path TEXT NOT NULL,
    a_path TEXT NOT NULL,
    b_path TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS raters (
    id TEXT PRIMARY KEY,
    scripted INTEGER NOT NULL CHECK (scripted IN (0, 1)),
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shown (
    rater_id TEXT NOT NULL REFERENCES raters(id),
    pair_id INTEGER NOT NULL REFERENCES pairs(id),
    left_method TEXT NOT NULL CHECK (left_method IN ('a', 'b')),
    shown_at TEXT NOT NULL,
    PRIMARY KEY (rater_id, pair_id)
);
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rater_id TEXT NOT NULL REFERENCES raters(id),
    pair_id INTEGER NOT NULL REFERENCES pairs(id),
    left_method TEXT NOT NULL CHECK (left_method IN ('a', 'b')),
    choice TEXT NOT NULL CHECK (choice IN ('left', 'right')),
    winner TEXT NOT NULL CHECK (winner IN ('a', 'b')),
    voted_at TEXT NOT NULL,
    UNIQUE (rater_id, pair_id)
);
"""


class StudyError(ValueError):
    """A request the study refuses (unknown pair, second vote, bad rater id)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode; transactions are opened explicitly (BEGIN IMMEDIATE)."""
    connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    # FULL: a vote acknowledged to the rater survives a power cut, not only a killed process.
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    # IMMEDIATE takes the write lock up front, so check-then-insert cannot interleave.
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def create_database(
    study_dir: Path, meta: dict[str, str], pairs: list[tuple[int, str, str, str]]
) -> Path:
    """Write a new study database; ``pairs`` are (sample_index, label, a, b) paths."""
    path = study_dir / DB_NAME
    if path.exists():
        raise ValueError(f"{path} already exists; pick a new out= or delete the old study")
    connection = connect(path)
    try:
        connection.executescript(SCHEMA)
        with transaction(connection):
            connection.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [(k, str(v)) for k, v in meta.items()],
            )
            connection.executemany(
                "INSERT INTO pairs (id, sample_index, label_path, a_path, b_path) "
                "VALUES (?, ?, ?, ?, ?)",
                [(i, *pair) for i, pair in enumerate(pairs)],
            )
    finally:
        connection.close()
    return path


@dataclass(frozen=True)
class Pair:
    id: int
    sample_index: int
    label_path: str
    a_path: str
    b_path: str


def _seed(*parts: object) -> int:
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def left_method(secret: str, rater_id: str, pair_id: int) -> str:
    """Which method ('a' or 'b') this rater sees on the left for this pair."""
    return "a" if _seed(secret, rater_id, pair_id) % 2 == 0 else "b"


def pair_order(secret: str, rater_id: str, pair_ids: list[int]) -> list[int]:
    """The order this rater sees the pairs in: shuffled per rater, stable across restarts."""
    order = list(pair_ids)
    random.Random(_seed(secret, rater_id, "order")).shuffle(order)
    return order


def check_rater_id(rater_id: object) -> str:
    if not isinstance(rater_id, str) or not 1 <= len(rater_id) <= 64:
        raise StudyError("rater must be a string of 1 to 64 characters", 422)
    if not all(c.isalnum() or c in "-_." for c in rater_id):
        raise StudyError("rater may only hold letters, digits, '-', '_' and '.'", 422)
    return rater_id


class Study:
    """One study dir: its database and images. Thread-safe: one connection per call."""

    def __init__(self, study_dir: str | Path) -> None:
        self.dir = Path(study_dir).expanduser().resolve()
        self.db_path = self.dir / DB_NAME
        if not self.db_path.is_file():
            raise FileNotFoundError(
                f"{self.db_path} not found; create the study first with "
                "`spadelab study create a=RUN_A b=RUN_B out=STUDY_DIR`"
            )
        with self.connection() as connection:
            self.meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
            rows = connection.execute(
                "SELECT id, sample_index, label_path, a_path, b_path FROM pairs ORDER BY id"
            ).fetchall()
        self.pairs = {row[0]: Pair(*row) for row in rows}
        self.secret = self.meta["secret"]

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        connection = connect(self.db_path)
        try:
            yield connection
        finally:
            connection.close()

    def register(self, rater_id: str, scripted: bool) -> None:
        """First visit creates the rater; a scripted flag once set stays set."""
        check_rater_id(rater_id)
        with self.connection() as connection, transaction(connection):
            connection.execute(
                "INSERT OR IGNORE INTO raters (id, scripted, created_at) VALUES (?, ?, ?)",
                (rater_id, int(scripted), now()),
            )
            if scripted:
                connection.execute("UPDATE raters SET scripted = 1 WHERE id = ?", (rater_id,))

    def _known_rater(self, connection: sqlite3.Connection, rater_id: str) -> None:
        check_rater_id(rater_id)
        row = connection.execute("SELECT 1 FROM raters WHERE id = ?", (rater_id,)).fetchone()
        if row is None:
            raise StudyError(f"unknown rater {rater_id!r}; open the study page first", 404)

    def next_pair(self, rater_id: str) -> dict[str, object]:
        """The rater's next unvoted pair with its left/right layout, or done."""
        with self.connection() as connection:
            self._known_rater(connection, rater_id)
            voted = {
                row[0]
                for row in connection.execute(
                    "SELECT pair_id FROM votes WHERE rater_id = ?", (rater_id,)
                )
            }
            progress = {"voted": len(voted), "total": len(self.pairs)}
            for pair_id in pair_order(self.secret, rater_id, sorted(self.pairs)):
                if pair_id in voted:
                    continue
                left = left_method(self.secret, rater_id, pair_id)
                with transaction(connection):
                    connection.execute(
                        "INSERT OR IGNORE INTO shown (rater_id, pair_id, left_method, shown_at) "
                        "VALUES (?, ?, ?, ?)",
                        (rater_id, pair_id, left, now()),
                    )
                return {"done": False, "pair": pair_id, **progress}
            return {"done": True, "pair": None, **progress}

    def image_path(self, rater_id: str, pair_id: int, side: str) -> Path:
        """The file shown on ``side`` ('left', 'right' or 'label') of a pair for this rater."""
        pair = self._pair(pair_id)
        if side == "label":
            return self.dir / pair.label_path
        if side not in ("left", "right"):
            raise StudyError(f"side must be left, right or label, not {side!r}", 404)
        check_rater_id(rater_id)
        left = left_method(self.secret, rater_id, pair_id)
        method = left if side == "left" else ("b" if left == "a" else "a")
        return self.dir / (pair.a_path if method == "a" else pair.b_path)

    def _pair(self, pair_id: object) -> Pair:
        if isinstance(pair_id, bool) or not isinstance(pair_id, int):
            raise StudyError(f"pair must be an integer, not {pair_id!r}", 422)
        if pair_id not in self.pairs:
            raise StudyError(f"unknown pair {pair_id}; pairs are 0..{len(self.pairs) - 1}", 404)
        return self.pairs[pair_id]

    def vote(self, rater_id: str, pair_id: int, choice: str) -> dict[str, object]:
        """Record one vote atomically; a second vote on the same pair is refused (409)."""
        self._pair(pair_id)
        if choice not in ("left", "right"):
            raise StudyError(f"choice must be 'left' or 'right', not {choice!r}", 422)
        left = left_method(self.secret, rater_id, pair_id)
        winner = left if choice == "left" else ("b" if left == "a" else "a")
        with self.connection() as connection:
            self._known_rater(connection, rater_id)
            try:
                with transaction(connection):
                    connection.execute(
                        "INSERT INTO votes (rater_id, pair_id, left_method, choice, winner, "
                        "voted_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (rater_id, pair_id, left, choice, winner, now()),
                    )
            except sqlite3.IntegrityError as error:
                raise StudyError(
                    f"rater {rater_id!r} already voted on pair {pair_id}", 409
                ) from error
        return self.next_pair(rater_id)

    def votes(self) -> list[dict[str, object]]:
        with self.connection() as connection:
            rows = connection.execute(
                "SELECT v.rater_id, v.pair_id, v.left_method, v.choice, v.winner, v.voted_at, "
                "r.scripted FROM votes v JOIN raters r ON r.id = v.rater_id ORDER BY v.id"
            ).fetchall()
        keys = ("rater", "pair", "left", "choice", "winner", "voted_at", "scripted")
        return [dict(zip(keys, row)) for row in rows]
