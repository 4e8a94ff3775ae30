"""Retention: what the data directory (or the shared store) holds, and removing what nobody needs any more.

Six kinds of data grow with use: inline corpora (``corpora/<sha256>.txt``, and
``corpora/owners/<principal>/<sha256>.txt`` for each authenticated principal),
derived files (``corpora/derived/``: decompressed, extracted, downloaded sources),
trajectories, what runs keep for a resume (``runs/``: each run's transcript and
last REPL snapshot, :mod:`rlm_mcp.core.runs.journal`), the sub-call cache (``subcalls/``)
and session records. Each corpus and derived kind has an age limit (time since
last use: a load touches the file) and a size limit, trajectories too; session
records go when their session could no longer be revived (idle past
``RLM_SESSION_IDLE_TIMEOUT_S``). Past a limit the least recently used go first.

A run's files go with its trajectory, never on their own: a run stays resumable
for as long as its trajectory is kept. So the trajectories' size limit counts a
run's trajectory and its files together, and files whose trajectory is gone are
removed. The sub-call cache has its own limits and its own policy
(:meth:`~rlm_mcp.core.subcalls.cache.SubcallCache.prune`, called from here).

Never removed, whatever the limits: what a live session of this process uses
(its corpus files, its trajectories), what a stored session record names (a
session that can still be revived, on this server or another sharing the store),
a trajectory with an unexpired lease (a run in progress, here or elsewhere), and
anything used in the last ``GRACE_S`` seconds (a load in flight in any process).

The server collects at start-up and every ``RLM_GC_INTERVAL_S``; ``rlm-mcp gc``
does the same from a shell (``--dry-run`` shows what would go). With an S3 store
the shared corpora under ``corpora/`` are left to an S3 lifecycle rule.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rlm_mcp.config import Settings
from rlm_mcp.core.runs import journal
from rlm_mcp.core.session_records import SessionRecord, parse_record
from rlm_mcp.core.subcalls.cache import open_cache
from rlm_mcp.errors import Damaged
from rlm_mcp.schemas import KindUsage, StorageUsage
from rlm_mcp.sources.inline import OWNERS, corpus_key
from rlm_mcp.store import Entry, KeyNotFound, Store, StoreError

log = logging.getLogger(__name__)
GRACE_S = 600.0
"""Anything used this recently is kept: a load may be between writing a file and starting its session."""
DAY_S = 86400.0
MB = 1024 * 1024
_CORPUS = re.compile(r"^[0-9a-f]{64}\.txt$")


@dataclass(frozen=True)
class Item:
    kind: str
    name: str
    """A file path (corpora, derived), or a store key: the log's name (trajectories), the record's key (sessions,
    subcalls), the trajectory id (runs: its transcript and snapshot)."""
    size: int
    used: float
    """Unix time of the last use (the file's modification time)."""


@dataclass
class InUse:
    """What must be kept whatever the limits: named by live sessions, records or leases."""

    files: set[Path] = field(default_factory=set)
    trajectories: set[str] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)


@dataclass
class Report:
    usage: StorageUsage
    removed: list[Item]
    failed: list[str]

    def summary(self) -> str:
        kinds = "; ".join(
            f"{name} {k.count} ({k.bytes / MB:,.1f} MB)" for name, k in self.usage.kinds.items() if k.count
        )
        text = f"{self.usage.location}: {kinds or 'empty'}"
        if self.removed:
            by_kind: dict[str, list[Item]] = {}
            for item in self.removed:
                by_kind.setdefault(item.kind, []).append(item)
            gone = ", ".join(
                f"{len(items)} {kind} ({sum(i.size for i in items) / MB:,.1f} MB)" for kind, items in by_kind.items()
            )
            text += f"; removed {gone}"
        if self.failed:
            text += f"; could not remove {len(self.failed)}: {self.failed[0]}"
        return text


class Retention:
    """Takes stock of stored data and removes what is past its limits and used by nobody."""

    def __init__(self, settings: Settings, store: Store, corpora_dir: Path):
        self.settings = settings
        self.store = store
        self.corpora_dir = corpora_dir
        self.derived_dir = corpora_dir / "derived"
        self.trajectories = store.sub("trajectories")
        self.records = store.sub("sessions")
        self.runs = store.sub("runs")
        self.cache = open_cache(store, settings)
        s = settings
        self.limits = {
            "corpora": (s.corpora_max_age_days, s.corpora_max_mb),
            "derived": (s.derived_max_age_days, s.derived_max_mb),
            "trajectories": (s.trajectories_max_age_days, s.trajectories_max_mb),
            "subcalls": (s.subcall_cache_max_age_days, s.subcall_cache_max_mb),
        }
        self.follows = {"runs": "trajectories"}
        """Kinds whose items go with another kind's (whose limits count them too)."""

    # -- stock -----------------------------------------------------------------------------

    def inventory(self) -> dict[str, list[Item]]:
        """Every item of every kind (blocking: run it in a worker thread)."""
        return {
            "corpora": [
                item
                for directory in (self.corpora_dir, *_subdirectories(self.corpora_dir / OWNERS))
                for item in _files(directory, "corpora", lambda p: bool(_CORPUS.match(p.name)))
            ],
            "derived": _files(self.derived_dir, "derived", lambda p: p.suffix == ".txt"),
            "trajectories": [Item("trajectories", e.key, e.size, e.modified) for e in self.trajectories.list_logs()],
            "runs": self._runs(),
            "subcalls": [Item("subcalls", e.key, e.size, e.modified) for e in self.cache.entries()],
            "sessions": [
                Item("sessions", e.key, e.size, e.modified)
                for e in self.records.list()
                if e.key.startswith("s_") and e.key.endswith(".json")
            ],
        }

    def _runs(self) -> list[Item]:
        """One item per run: its transcript log and its snapshot, by trajectory id."""
        found: dict[str, Item] = {}
        entries = self.runs.list_logs() + [
            Entry(e.key.removesuffix(journal.STATE_SUFFIX), e.size, e.modified)
            for e in self.runs.list()
            if e.key.endswith(journal.STATE_SUFFIX)
        ]
        for entry in entries:
            seen = found.get(entry.key)
            size, used = entry.size + (seen.size if seen else 0), max(entry.modified, seen.used if seen else 0.0)
            found[entry.key] = Item("runs", entry.key, size, used)
        return list(found.values())

    def usage(self, stock: dict[str, list[Item]] | None = None) -> StorageUsage:
        stock = self.inventory() if stock is None else stock
        kinds = {}
        for name, items in stock.items():
            age, mb = self.limits.get(name, (None, None))
            kinds[name] = KindUsage(
                count=len(items),
                bytes=sum(i.size for i in items),
                # 0 is "no limit", except for the cache, where it is "no cache": nothing is kept.
                max_bytes=mb * MB if mb or (name == "subcalls" and mb == 0) else None,
                max_age_days=age or None,
                goes_with=self.follows.get(name),
            )
        return StorageUsage(location=self.store.url, measured_at=time.time(), kinds=kinds)

    # -- what is in use ----------------------------------------------------------------------

    def in_use(self, live: InUse, now: float) -> InUse:
        """``live`` (this process's sessions and runs) plus what stored records and leases name."""
        kept = InUse(set(live.files), set(live.trajectories), set(live.sessions))
        stale = now - self.settings.session_idle_timeout_s
        for entry in self.records.list():
            if not (entry.key.startswith("s_") and entry.key.endswith(".json")):
                continue
            session_id = entry.key.removesuffix(".json")
            if entry.modified < stale and session_id not in live.sessions:
                continue  # expired: its record goes, and what it named is free
            kept.sessions.add(session_id)
            try:
                record = parse_record(self.records.read(entry.key), session_id, entry.key)
            except (KeyNotFound, Damaged, StoreError):
                continue
            kept.trajectories.add(record.trajectory_id)
            kept.files.update(self._files_of(record))
        for entry in self.trajectories.list():
            if entry.key.endswith(".lease") and self._lease_alive(entry.key, now):
                kept.trajectories.add(entry.key.removesuffix(".lease"))
        return kept

    def _files_of(self, record: SessionRecord) -> Iterable[Path]:
        for document in record.documents:
            if document.corpus_id:
                yield self.corpora_dir / corpus_key(document.corpus_id, record.owner)
            yield Path(document.path)

    def _lease_alive(self, key: str, now: float) -> bool:
        try:
            return float(json.loads(self.trajectories.read(key))["expires_at"]) > now
        except (KeyNotFound, StoreError, ValueError, KeyError, TypeError):
            return False

    # -- removal -----------------------------------------------------------------------------

    def plan(self, stock: dict[str, list[Item]], kept: InUse, now: float) -> list[Item]:
        """What goes: past its age, then the least recently used past the size limit; never what is kept."""
        doomed: list[Item] = []
        stale = now - self.settings.session_idle_timeout_s
        doomed += [i for i in stock["sessions"] if i.used < stale and i.name.removesuffix(".json") not in kept.sessions]
        runs = {item.name: item for item in stock["runs"]}
        for kind in ("corpora", "derived", "trajectories"):
            max_age_days, max_mb = self.limits[kind]
            items = sorted(stock[kind], key=lambda i: i.used)
            # A run's files count with its trajectory (they go together); orphans' are about to go.
            with_files = {i.name: i.size + runs[i.name].size if i.name in runs else i.size for i in items}
            total = sum(with_files.values()) if kind == "trajectories" else sum(i.size for i in items)
            for item in items:
                old = bool(max_age_days) and now - item.used > max_age_days * DAY_S
                big = bool(max_mb) and total > max_mb * MB
                if (old or big) and not _kept(item, kept, now):
                    doomed.append(item)
                    total -= with_files[item.name] if kind == "trajectories" else item.size
        # A run's files go with its trajectory, or once it has none: never while a run is live or resumable.
        gone = {item.name for item in doomed if item.kind == "trajectories"}
        present = {item.name for item in stock["trajectories"]}
        for item in stock["runs"]:
            if item.name in gone or (item.name not in present and not _kept(item, kept, now)):
                doomed.append(item)
        return doomed

    def remove(self, item: Item) -> None:
        if item.kind in ("corpora", "derived"):
            Path(item.name).unlink(missing_ok=True)
        elif item.kind == "trajectories":
            self.trajectories.delete_log(item.name)
            self.trajectories.delete(f"{item.name}.lease")
        elif item.kind == "runs":
            journal.drop(self.runs, item.name)
        else:
            self.records.delete(item.name)

    def collect(self, live: InUse | None = None, *, dry_run: bool = False) -> Report:
        """Take stock, remove what is past its limits and unused, and report (blocking: run it in a thread)."""
        now = time.time()
        stock = self.inventory()
        doomed = self.plan(stock, self.in_use(live or InUse(), now), now)
        removed, failed = [], []
        stuck: set[str] = set()  # trajectories that could not be removed: their runs' files stay with them
        for item in doomed:
            if dry_run:
                removed.append(item)
                continue
            if item.kind == "runs" and item.name in stuck:
                continue
            try:
                self.remove(item)
                removed.append(item)
            except (OSError, StoreError) as exc:
                failed.append(f"{item.name}: {exc}")
                if item.kind == "trajectories":
                    stuck.add(item.name)
        entries = [Entry(i.name, i.size, i.used) for i in stock["subcalls"]]
        pruned = self.cache.prune(now, dry_run=dry_run, entries=entries)
        removed += [Item("subcalls", e.key, e.size, e.modified) for e in pruned.removed]
        failed += pruned.failed
        gone = {(i.kind, i.name) for i in removed}
        left = {kind: [i for i in items if (kind, i.name) not in gone] for kind, items in stock.items()}
        return Report(self.usage(left), removed, failed)


def _kept(item: Item, kept: InUse, now: float) -> bool:
    if now - item.used < GRACE_S:
        return True
    if item.kind in ("trajectories", "runs"):
        return item.name in kept.trajectories
    return Path(item.name) in kept.files


def _subdirectories(directory: Path) -> list[Path]:
    """The folders in ``directory`` (each principal's inline corpora live in one under ``corpora/owners/``)."""
    try:
        return [path for path in directory.iterdir() if path.is_dir()]
    except FileNotFoundError:
        return []


def _files(directory: Path, kind: str, wanted: Callable[[Path], bool]) -> list[Item]:
    items = []
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return []
    for path in entries:
        if not wanted(path):
            continue
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        if path.is_file():
            items.append(Item(kind, str(path), info.st_size, info.st_mtime))
    return items


def drop_private_corpora(paths: set[Path], records: Store, loaded_at: float) -> list[Path]:
    """Remove the inline corpus files of a closed session that no stored session record names and that nobody
    touched since the session loaded them (another load of the same text touches the file); blocking."""
    for entry in records.list():
        if entry.key.startswith("s_") and entry.key.endswith(".json"):
            try:
                record = parse_record(records.read(entry.key), entry.key.removesuffix(".json"), entry.key)
            except (KeyNotFound, Damaged, StoreError):
                continue
            paths = paths - {Path(d.path) for d in record.documents}
    dropped = []
    for path in paths:
        with contextlib.suppress(OSError):
            if path.stat().st_mtime <= loaded_at + 1.0:
                path.unlink()
                dropped.append(path)
    return dropped
