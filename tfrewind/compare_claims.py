"""Atomic claims on a study's cells, so that compare processes sharing one ``OUT`` (on one machine, or
on several that mount it) never run the same cell at the same time.

Layout::

    OUT/claims/<cell>/<n>.json       the n-th claim on the cell: host, boot id, pid, process start, time
    OUT/claims/<cell>/<n>.released   its holder let go (the cell finished, failed or was interrupted)

A claim is taken by creating the next generation's file with ``os.link`` from a complete temporary
file: the link fails if the name exists, so of two processes that saw generation ``n - 1`` free,
exactly one creates ``n`` (the other sees it and backs off), and a reader never sees a half-written
claim. Why generations and not one lock file that is deleted and re-created: breaking a stale lock
by deleting it races (two processes see it stale, the first deletes it and takes a fresh one, the
second deletes that); files here are never deleted while a sweep may run, so "the highest
generation" only moves forward and taking generation ``n`` is the one atomic step. Why ``link`` and
not ``O_CREAT | O_EXCL``: the file appears with its content, and it is the exclusive create that
NFS has always honoured (a retransmitted link that reports EEXIST after succeeding is caught by the
temporary file's link count).

A claim is *stale* — free to take — when its holder is gone: on the same machine (same host name and
boot id) when no process has its pid and start time (a SIGKILLed or crashed process, a zombie
included); on another machine when its file's modification time, which the holder touches every
:data:`HEARTBEAT` seconds, is older than :data:`LEASE` seconds (clocks must agree to well within it).

Why not a file in the cell's run directory: :class:`~tfrewind.rundir.RunDir` refuses a directory with
foreign files before the run writes its config there, and removes hidden files as partial writes.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

CLAIMS_DIR = "claims"
LEASE = 600.0
"""Seconds after its last heartbeat that a claim of another machine's process counts as abandoned."""
HEARTBEAT = 60.0
"""Seconds between touches of the claims a process holds."""


@dataclass(frozen=True)
class Owner:
    """Who holds a claim: enough to tell on the same machine whether that process still runs."""

    host: str
    boot_id: str
    pid: int
    start: str
    """The process' start time in clock ticks since boot (``/proc/PID/stat``): a reused pid differs."""

    @classmethod
    def me(cls) -> "Owner":
        return cls(socket.gethostname(), _boot_id(), os.getpid(), _process_start(os.getpid()) or "")

    def same_machine(self) -> bool:
        here = Owner.me()
        return (self.host, self.boot_id) == (here.host, here.boot_id)

    def running(self) -> bool:
        """On this machine: does the holder's process still run (not a zombie, not a reused pid)?"""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process: it exists
            pass
        start = _process_start(self.pid)
        return start is None or not self.start or start == self.start

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"


class Claims:
    """The claims this process holds on one study, kept alive by a heartbeat thread until released."""

    def __init__(self, out: str | Path, owner: Owner | None = None, lease: float = LEASE,
                 heartbeat: float = HEARTBEAT):
        self.root = Path(out) / CLAIMS_DIR
        self.owner = owner or Owner.me()
        self.lease = lease
        self._held: dict[str, Path] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(heartbeat,), name="tfrewind-claims", daemon=True)
        self._thread.start()

    def take(self, name: str) -> bool:
        """Claim ``name`` (a cell); False if another live process holds it."""
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({**asdict(self.owner), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode()
        for _ in range(1000):  # each pass takes the claim, meets a live holder, or sees a newer generation
            n = _next_generation(directory)
            if n and self._live(directory, n - 1):
                return False
            path = directory / f"{n}.json"
            if _link_new(path, payload):
                with self._lock:
                    self._held[name] = path
                return True
        raise RuntimeError(f"could not claim {name!r} in {str(directory)!r}: its claims keep changing")

    def holder(self, name: str) -> str:
        """Who holds ``name`` now ("host:pid", or "" if nobody): for messages only."""
        directory = self.root / name
        n = _next_generation(directory) if directory.is_dir() else 0
        return str(_read_owner(directory / f"{n - 1}.json")) if n and self._live(directory, n - 1) else ""

    def release(self, name: str) -> None:
        with self._lock:
            path = self._held.pop(name, None)
        if path is not None:
            _link_new(path.with_suffix(".released"), b"")

    def close(self) -> None:
        """Release every claim still held and stop the heartbeat."""
        for name in list(self._held):
            self.release(name)
        self._stop.set()

    def _live(self, directory: Path, n: int) -> bool:
        path = directory / f"{n}.json"
        if (directory / f"{n}.released").exists():
            return False
        owner = _read_owner(path)
        if owner.same_machine():
            return owner.running()
        try:
            return time.time() - path.stat().st_mtime < self.lease
        except FileNotFoundError:  # the study was reset under us: nobody holds it
            return False

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            with self._lock:
                paths = list(self._held.values())
            for path in paths:
                try:
                    os.utime(path)
                except OSError:
                    pass  # a storage hiccup: the next beat tries again, the lease is ten beats


def _next_generation(directory: Path) -> int:
    """One past the highest claim generation (0 if none). Lookups by name, not a listing: a cached
    directory listing on a network file system may miss the newest file, a lookup does not."""
    names = [p.stem for p in directory.glob("*.json")]
    n = max((int(s) + 1 for s in names if s.isdigit()), default=0)
    while (directory / f"{n}.json").exists():
        n += 1
    return n


def _link_new(path: Path, payload: bytes) -> bool:
    """Create ``path`` with ``payload`` if no file has that name (atomically); False if one has."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(payload)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return os.stat(tmp).st_nlink == 2  # NFS: a retransmitted link that had succeeded
    finally:
        tmp.unlink()


def _read_owner(path: Path) -> Owner:
    data = json.loads(path.read_text())
    return Owner(data["host"], data["boot_id"], int(data["pid"]), data["start"])


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str | None:
    """Start time of a live process, None where /proc cannot tell (not Linux); "" for a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return "" if fields[0] == "Z" else fields[19]


__all__ = ["CLAIMS_DIR", "HEARTBEAT", "LEASE", "Claims", "Owner"]
