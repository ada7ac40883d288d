"""Turning one guest's work into a ``GuestOutcome``: errors become results, not crashes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import (IntegrityError, NodeUnreachable, ObjectNotFound, PointNotFound,
                      RepositoryError, VzError)
from ..ports import Catalog, Clock, Node, Reporter, Repository, RepositoryAccess
from ..results import GuestOutcome, RunResult, Status, overall

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Tally:
    """What a guest's work filled in on success."""

    point_id: str | None = None
    bytes_in: int = 0
    new_bytes: int = 0
    extra: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Attempt:
    guest: str
    node: str | None
    tally: Tally = field(default_factory=Tally)
    outcome: GuestOutcome | None = None


@contextmanager
def attempt(guest: str, node: str | None, on_error: Callable[[VzError], None] | None = None
            ) -> Iterator[Attempt]:
    """Run one guest's work; a ``VzError`` or a bug becomes a failed outcome, with the
    guest and node named. KeyboardInterrupt and SystemExit (SIGTERM) propagate."""
    started = time.monotonic()
    a = Attempt(guest, node)
    try:
        yield a
    except VzError as e:
        log.error("%s on %s: %s", guest, node, e)
        if on_error:
            on_error(e)
        a.outcome = _failed(a, started, type(e).__name__, e.exit_code, str(e), e.hint)
        return
    except Exception as e:  # a bug: report it for this guest, carry on with the others
        log.exception("%s on %s: unexpected error", guest, node)
        a.outcome = _failed(a, started, type(e).__name__, 2, f"unexpected error: {e}",
                            "This is a bug in vzbackup: please report it with the log.")
        return
    t = a.tally
    a.outcome = GuestOutcome(guest, node, "ok", point_id=t.point_id, bytes_in=t.bytes_in,
                             new_bytes=t.new_bytes, seconds=round(time.monotonic() - started, 3),
                             message="; ".join(t.warnings) or None, warnings=tuple(t.warnings))


def _failed(a: Attempt, started: float, error: str, code: int, message: str, hint: str | None) -> GuestOutcome:
    return GuestOutcome(a.guest, a.node, "failed", seconds=round(time.monotonic() - started, 3),
                        error=error, exit_code=code, message=message, hint=hint)


# What a copy's failure says about the copy; anything else (a node or endpoint that does not
# answer) says nothing about it, and its recorded state stays as it was.
COPY_ERRORS = (IntegrityError, RepositoryError, NodeUnreachable)


def first_good_copy(sources: Iterable[Repository], point_id: str, read: Callable[[Repository], T],
                    catalog: Catalog, reporter: Reporter, clock: Clock) -> tuple[Repository, T]:
    """``read`` each copy of a point, nearest first, until one works: that copy is recorded
    ``ok`` (it was just read end to end), a failing one by what its failure says about it
    (``copy_state_after``), and the next is tried. The last failure is raised."""
    last: VzError | None = None
    for repo in sources:
        try:
            result = read(repo)
        except COPY_ERRORS as e:  # try the next copy, farther away
            state = copy_state_after(e)
            if state is not None:
                catalog.record_copy_state(point_id, repo.name, state, clock.now())
            reporter.warning(f"copy in {repo.name} failed: {e}")
            last = e
            continue
        catalog.record_copy_state(point_id, repo.name, "ok", clock.now(), "full")
        return repo, result
    assert last is not None, "no copy to read"
    raise last


def copy_state_after(error: VzError) -> str | None:
    if isinstance(error, IntegrityError):
        return "corrupt"
    if isinstance(error, (ObjectNotFound, PointNotFound)):
        return "missing"
    return None


class RunLog:
    """One run in the catalogue: its items as they finish, its status at the end."""

    def __init__(self, catalog: Catalog, clock: Clock, kind: str, args: dict[str, Any]):
        self.catalog, self.clock, self.kind = catalog, clock, kind
        self.run_id = catalog.start_run(kind, args, clock.now())
        self.items: list[GuestOutcome] = []

    def add(self, a: Attempt) -> GuestOutcome:
        assert a.outcome is not None
        self.catalog.record_item(self.run_id, a.outcome)
        self.items.append(a.outcome)
        return a.outcome

    def add_outcome(self, outcome: GuestOutcome) -> GuestOutcome:
        """An outcome made elsewhere (a job's per-guest summary of its steps)."""
        self.catalog.record_item(self.run_id, outcome)
        self.items.append(outcome)
        return outcome

    @property
    def status(self) -> Status:
        return overall(self.items) if self.items else "success"

    def result(self, details: dict[str, Any] | None = None,
               items: list[GuestOutcome] | None = None) -> RunResult:
        shown = self.items if items is None else items
        return RunResult(self.kind, self.status, tuple(shown), self.run_id, details or {})


@contextmanager
def recorded_run(catalog: Catalog, clock: Clock, kind: str, args: dict[str, Any]) -> Iterator[RunLog]:
    """Record a run: finished with its status, or as aborted when interrupted (SIGTERM,
    Ctrl-C) or broken by an error no guest could be blamed for."""
    run = RunLog(catalog, clock, kind, args)
    try:
        yield run
    except BaseException:
        catalog.finish_run(run.run_id, "aborted", clock.now())
        raise
    catalog.finish_run(run.run_id, run.status, clock.now())


def home_node(repo: Repository, nodes: Mapping[str, Node],
              access: RepositoryAccess | None) -> tuple[Node, dict] | None:
    """The SSH node whose own disk holds ``repo``, and how it opens it there: work that
    reads the repository (verify, GC) runs on that node, so that only a report crosses the
    network. None: run here."""
    node = nodes.get(access.home(repo.name) or "") if access else None
    if node is None or node.agent is None or access is None:
        return None
    spec = access.spec_for(repo.name, node.name)
    return (node, spec) if spec is not None else None
