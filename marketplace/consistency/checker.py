"""Checking a recorded history against a catalog consistency mode.

Each product is a register whose value is its version, an integer that only grows (each write
adds one). "Before" means real time: operation A precedes B when A completed strictly before B
was invoked; operations that overlap are concurrent and either order is allowed. Only reads
that completed ``ok`` are judged; a write counts as acknowledged when it completed ``ok``; a
write with an ``unknown`` outcome may or may not have taken effect, so it is never required to
be seen but may be.

Anomaly kinds (one read may show under several):

- ``stale_read``: a read returned a version older than (a) the version of a write acknowledged
  before the read was invoked, or (b) the version a read of the same product, by any client,
  that completed before it was invoked returned (the register never goes back).
- ``read_your_writes``: a read returned a version older than one of the same client's own
  writes of that product acknowledged before the read was invoked.
- ``monotonic_reads``: a read returned a version older than one the same client's earlier read
  of that product (completed before this one was invoked) returned.
- ``phantom_read``: a read returned a version nobody wrote: not the initial version, not made
  by an acknowledged write, nor one an unknown-outcome write may have made. A write with an
  unknown outcome and no known version may explain one unexplained version of its product;
  when a product has more unexplained versions than such writes, every read of them counts.
- ``future_read``: a read returned a version whose only writes were invoked after the read
  completed.
- ``lost_write``: a write was acknowledged with a version no newer than that of a write of the
  same product acknowledged before it was invoked: versions only grow, so an acknowledged
  write was forgotten (a restart that lost it) or overwritten from an older state. A retry
  under the same idempotency key, answered with the same version, must be recorded as one
  operation.
- ``not_converged`` (eventual): the final reads of a written product (its last read, and the
  last read from each replica where reads name one, among reads invoked after its last write
  completed) did not all return one version, or returned one that is not the newest: the
  newest acknowledged version (the initial one when none was), or a newer one an
  unknown-outcome write may have made. A client's stale read followed by others' fresh ones
  is no final state: it delays convergence (below).
- ``slow_convergence`` (eventual): converged, but later than ``lag_s + bound_s`` after the last
  write completed. The convergence time is an upper bound: the completion of the last read,
  invoked after the last write completed, that returned another version (0 when none did).
  An unknown-outcome write counts as completed when the client gave up on it; one applied
  later than that shows as slow convergence.
- ``no_final_read`` (eventual, with ``require_final_reads``): a written product no read looked
  at after its last write completed, so its convergence is not shown.

Which kinds break which mode: ``phantom_read``, ``future_read`` and ``lost_write`` break every
mode; strong, also ``stale_read`` and (as strong implies session, they are reported too)
``read_your_writes`` and ``monotonic_reads``; session, those two; eventual, ``not_converged``,
``slow_convergence`` and ``no_final_read``. Kinds a mode does not promise against are
still counted, as information (``CheckResult.informative``): eventual's stale reads, say.

Per product the work is sorting by time and binary search over prefix maxima: O(n log n).
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from marketplace.consistency.history import History, Kind, Operation, Outcome

MAX_EXAMPLES = 5


class Mode(StrEnum):
    """A catalog read consistency mode (DESIGN.md section 12)."""

    STRONG = "strong"
    SESSION = "session"
    EVENTUAL = "eventual"


class AnomalyKind(StrEnum):
    """What went wrong; see the module docstring for each definition."""

    STALE_READ = "stale_read"
    READ_YOUR_WRITES = "read_your_writes"
    MONOTONIC_READS = "monotonic_reads"
    PHANTOM_READ = "phantom_read"
    FUTURE_READ = "future_read"
    LOST_WRITE = "lost_write"
    NOT_CONVERGED = "not_converged"
    SLOW_CONVERGENCE = "slow_convergence"
    NO_FINAL_READ = "no_final_read"


STALE, RYW, MONOTONIC, LOST = (
    AnomalyKind.STALE_READ,
    AnomalyKind.READ_YOUR_WRITES,
    AnomalyKind.MONOTONIC_READS,
    AnomalyKind.LOST_WRITE,
)
_EVERY_MODE = frozenset({AnomalyKind.PHANTOM_READ, AnomalyKind.FUTURE_READ, AnomalyKind.LOST_WRITE})
_SESSION_KINDS = frozenset({AnomalyKind.READ_YOUR_WRITES, AnomalyKind.MONOTONIC_READS})
VIOLATIONS: Mapping[Mode, frozenset[AnomalyKind]] = {
    Mode.STRONG: _EVERY_MODE | _SESSION_KINDS | {AnomalyKind.STALE_READ},
    Mode.SESSION: _EVERY_MODE | _SESSION_KINDS,
    Mode.EVENTUAL: _EVERY_MODE
    | {AnomalyKind.NOT_CONVERGED, AnomalyKind.SLOW_CONVERGENCE, AnomalyKind.NO_FINAL_READ},
}


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One anomaly: whose operation, on which product, when, what it saw against what it had
    to see (``expected`` is a lower bound for the read kinds), and why in words."""

    kind: AnomalyKind
    client: str
    product_id: str
    invoke: float
    complete: float
    seen: int | None
    expected: int | None
    cause: str

    def __str__(self) -> str:
        seen = "-" if self.seen is None else str(self.seen)
        expected = "-" if self.expected is None else str(self.expected)
        verb = "made" if self.kind is AnomalyKind.LOST_WRITE else "saw"
        return (
            f"{self.client} on {self.product_id} [{self.invoke:.6f}, {self.complete:.6f}]: "
            f"{verb} version {seen}, expected {expected}: {self.cause}"
        )


@dataclass(frozen=True, slots=True)
class Convergence:
    """How one written product converged after its last write (eventual mode).

    ``settled_at`` is when its last write (acknowledged or unknown) completed; ``version`` the
    version the final reads agreed on (``None``: they did not agree, or nobody read); ``lag_s``
    the time from ``settled_at`` to convergence (an upper bound); ``readers`` how many readers
    (replicas where named, else clients) read it after ``settled_at``.
    """

    product_id: str
    settled_at: float
    version: int | None
    lag_s: float | None
    readers: int
    within_bound: bool


@dataclass(frozen=True)
class CheckResult:
    """The verdict: violations and informative counts by kind, examples, totals."""

    mode: Mode
    violations: Mapping[AnomalyKind, int]
    informative: Mapping[AnomalyKind, int]
    examples: Mapping[AnomalyKind, tuple[Anomaly, ...]]
    operations: int
    reads: int
    writes: int
    products: int
    convergence: tuple[Convergence, ...] = ()
    bound_s: float | None = None
    seconds: float = field(default=0.0, compare=False)

    @property
    def ok(self) -> bool:
        """No anomaly the mode promises against."""
        return not any(self.violations.values())

    def count(self, kind: AnomalyKind | str) -> int:
        """How many anomalies of ``kind`` were found, violation or not."""
        kind = AnomalyKind(kind)
        return self.violations.get(kind, 0) + self.informative.get(kind, 0)

    @property
    def max_lag_s(self) -> float | None:
        """The slowest convergence measured (eventual), ``None`` when none was."""
        lags = [c.lag_s for c in self.convergence if c.lag_s is not None]
        return max(lags) if lags else None

    def __str__(self) -> str:
        verdict = "ok" if self.ok else f"{sum(self.violations.values())} violations"
        lines = [
            f"{self.mode.value} check of {self.operations} operations ({self.reads} reads, "
            f"{self.writes} writes, {self.products} products): {verdict}"
        ]
        for title, counts in (("violation", self.violations), ("information", self.informative)):
            for kind, n in sorted(counts.items()):
                if n:
                    lines.append(f"  {title} {kind.value}: {n}")
                    lines.extend(f"    {example}" for example in self.examples.get(kind, ()))
        if self.convergence:
            converged = [c for c in self.convergence if c.version is not None]
            lag = self.max_lag_s
            lines.append(
                f"  converged {len(converged)}/{len(self.convergence)} written products"
                + ("" if lag is None else f", slowest {lag:.3f} s")
                + ("" if self.bound_s is None else f" (bound {self.bound_s:.3f} s)")
            )
        return "\n".join(lines)


class _Frontier:
    """The highest version among operations that completed before a time: prefix maxima over
    operations sorted by completion, answered by binary search."""

    __slots__ = ("_best", "_ends", "_versions")

    def __init__(self, ops: Iterable[Operation]) -> None:
        self._ends: list[float] = []
        self._best: list[Operation] = []
        self._versions: list[int] = []
        for op in sorted(ops, key=lambda o: o.complete):
            if op.version is None:
                continue
            if not self._best or op.version > self._versions[-1]:
                self._best.append(op)
                self._versions.append(op.version)
            else:
                self._best.append(self._best[-1])
                self._versions.append(self._versions[-1])
            self._ends.append(op.complete)

    def before(self, t: float) -> tuple[int, Operation] | None:
        """The highest version among operations that completed before ``t``, and its operation."""
        i = bisect_left(self._ends, t)
        return (self._versions[i - 1], self._best[i - 1]) if i else None


class _Findings:
    """Anomalies counted by kind, keeping the first ``limit`` of each as examples."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts: dict[AnomalyKind, int] = defaultdict(int)
        self.examples: dict[AnomalyKind, list[Anomaly]] = defaultdict(list)

    def add(self, kind: AnomalyKind, op: Operation, expected: int | None, cause: str) -> None:
        self.counts[kind] += 1
        if len(self.examples[kind]) < self.limit:
            self.examples[kind].append(
                Anomaly(
                    kind,
                    op.client,
                    op.product_id,
                    op.invoke,
                    op.complete,
                    op.version,
                    expected,
                    cause,
                )
            )


def check(
    history: History | Iterable[Operation],
    mode: Mode | str,
    *,
    initial_version: int | None = None,
    lag_s: float = 0.0,
    bound_s: float = 1.0,
    require_final_reads: bool = False,
    max_examples: int = MAX_EXAMPLES,
) -> CheckResult:
    """Check ``history`` against ``mode`` (see the module docstring for the definitions).

    A bare iterable of operations takes ``initial_version`` (default none known) for every
    product; a ``History`` carries its own. In eventual mode a written product must converge
    within ``lag_s`` (the configured replication lag) plus ``bound_s``; with
    ``require_final_reads`` a written product nobody read after its last write is a violation.
    """
    started = time.perf_counter()
    mode = Mode(mode)
    if isinstance(history, History):
        ops = history.operations()
        initial_of = history.initial_of
    else:
        ops = list(history)

        def initial_of(product_id: str) -> int | None:
            return initial_version

    by_product: dict[str, list[Operation]] = defaultdict(list)
    for op in ops:
        by_product[op.product_id].append(op)

    findings = _Findings(max_examples)
    convergence: list[Convergence] = []
    bound = lag_s + bound_s
    for product_id in sorted(by_product):
        product_ops = by_product[product_id]
        reads = sorted(
            (o for o in product_ops if o.kind is Kind.READ and o.outcome is Outcome.OK),
            key=lambda o: (o.invoke, o.id),
        )
        writes = [o for o in product_ops if o.kind is Kind.WRITE]
        _check_order(reads, writes, findings)
        _check_values(reads, writes, initial_of(product_id), findings)
        if mode is Mode.EVENTUAL and writes:
            convergence.append(
                _converge(
                    product_id,
                    reads,
                    writes,
                    initial_of(product_id),
                    bound,
                    require_final_reads,
                    findings,
                )
            )

    promised = VIOLATIONS[mode]
    return CheckResult(
        mode=mode,
        violations={k: n for k, n in findings.counts.items() if k in promised},
        informative={k: n for k, n in findings.counts.items() if k not in promised},
        examples={k: tuple(v) for k, v in findings.examples.items()},
        operations=len(ops),
        reads=sum(1 for o in ops if o.kind is Kind.READ),
        writes=sum(1 for o in ops if o.kind is Kind.WRITE),
        products=len(by_product),
        convergence=tuple(convergence),
        bound_s=bound if mode is Mode.EVENTUAL else None,
        seconds=time.perf_counter() - started,
    )


def _check_order(reads: list[Operation], writes: list[Operation], findings: _Findings) -> None:
    """Stale reads and lost writes against everyone, and the session guarantees against the
    reader's own."""
    acked = [w for w in writes if w.outcome is Outcome.OK and w.version is not None]
    everyone_writes = _Frontier(acked)
    everyone_reads = _Frontier(reads)
    writes_by: dict[str, list[Operation]] = defaultdict(list)
    reads_by: dict[str, list[Operation]] = defaultdict(list)
    for w in acked:
        writes_by[w.client].append(w)
    for r in reads:
        reads_by[r.client].append(r)
    for client, own in reads_by.items():
        own_writes = _Frontier(writes_by.get(client, ()))
        own_reads = _Frontier(own)
        for read in own:
            _behind(findings, RYW, read, own_writes, "own write acknowledged")
            _behind(findings, MONOTONIC, read, own_reads, "own earlier read returned it")
    for write in acked:
        _behind(findings, LOST, write, everyone_writes, "write acknowledged", or_equal=True)
    for read in reads:
        # One stale read per read: against the writes first, else against the reads.
        if not _behind(findings, STALE, read, everyone_writes, "write acknowledged"):
            _behind(findings, STALE, read, everyone_reads, "an earlier read returned it")


def _behind(
    findings: _Findings,
    kind: AnomalyKind,
    op: Operation,
    frontier: _Frontier,
    what: str,
    *,
    or_equal: bool = False,
) -> bool:
    """Record ``kind`` if ``op``'s version is below the frontier before ``op`` was invoked
    (or equal to it, with ``or_equal``: a write must make a newer version)."""
    before = frontier.before(op.invoke)
    if before is None or op.version is None:
        return False
    version, cause = before
    if version < op.version or (version == op.version and not or_equal):
        return False
    findings.add(kind, op, version, f"{what} (by {cause.client}, completed {cause.complete:.6f})")
    return True


def _check_values(
    reads: list[Operation], writes: list[Operation], initial: int | None, findings: _Findings
) -> None:
    """Phantom reads (a version nobody wrote) and reads from the future."""
    first_invoke: dict[int, float] = {}
    open_writes = 0
    for w in writes:
        if w.outcome is Outcome.FAILED:
            continue
        if w.version is None:
            open_writes += 1
        else:
            first_invoke[w.version] = min(w.invoke, first_invoke.get(w.version, math.inf))

    def explained(v: int) -> bool:
        if v in first_invoke or v == initial:
            return True
        # Not knowing the initial version, anything older than every written one may be it.
        return initial is None and v < min(first_invoke, default=math.inf)

    unexplained = {r.version for r in reads if r.version is not None and not explained(r.version)}
    for read in reads:
        v = read.version
        assert v is not None
        if v in unexplained and len(unexplained) > open_writes:
            findings.add(
                AnomalyKind.PHANTOM_READ,
                read,
                None,
                f"no write made version {v}"
                + (f" ({open_writes} unknown writes of unknown version)" if open_writes else ""),
            )
        elif v in first_invoke and v != initial and first_invoke[v] > read.complete:
            findings.add(
                AnomalyKind.FUTURE_READ,
                read,
                None,
                f"version {v} was first written by a write invoked at {first_invoke[v]:.6f}",
            )


def _converge(
    product_id: str,
    reads: list[Operation],
    writes: list[Operation],
    initial: int | None,
    bound: float,
    require_final_reads: bool,
    findings: _Findings,
) -> Convergence:
    """Did every reader end on the newest version, and how long after the last write?"""
    applied = [w for w in writes if w.outcome is not Outcome.FAILED]
    if not applied:
        # Only failed writes: nothing changed, nothing to converge.
        return Convergence(product_id, -math.inf, None, 0.0, 0, True)
    settled = max(w.complete for w in applied)
    acked = [w.version for w in writes if w.outcome is Outcome.OK and w.version is not None]
    # Nothing acknowledged: the product may still be at its initial version.
    newest = max(acked, default=initial)
    maybe = [w for w in writes if w.outcome is Outcome.UNKNOWN]

    def acceptable(v: int) -> bool:
        if newest is None:
            # Nothing acknowledged and the initial version unknown: any agreement will do.
            return True
        # Else the newest acknowledged, or a newer version an unknown write may have made.
        return v == newest or (v > newest and any(w.version in (None, v) for w in maybe))

    after = [r for r in reads if r.invoke > settled]
    if not after:
        if require_final_reads:
            findings.add(
                AnomalyKind.NO_FINAL_READ,
                max(applied, key=lambda w: w.complete),
                newest,
                f"nobody read {product_id} after its last write completed at {settled:.6f}",
            )
        return Convergence(product_id, settled, None, None, 0, not require_final_reads)
    readers = len({r.replica if r.replica is not None else r.client for r in after})
    # The final state: the product's last read, and each named replica's last read. A client's
    # own last read is no final state: a stale read it made early only delays convergence.
    last = {"": after[-1]}  # sorted by invoke: the last one wins
    for read in after:
        if read.replica is not None:
            last[read.replica] = read
    finals = {r.version for r in last.values()}
    agreed = next(iter(finals)) if len(finals) == 1 else None
    if agreed is None or not acceptable(agreed):
        odd = next((r for r in last.values() if r.version != newest), after[-1])
        findings.add(
            AnomalyKind.NOT_CONVERGED,
            odd,
            newest,
            f"final reads returned versions {sorted(v for v in finals if v is not None)}"
            f" after the last write completed at {settled:.6f}",
        )
        return Convergence(product_id, settled, None, None, readers, False)
    behind = [r.complete for r in after if r.version != agreed]
    lag = max(max(behind, default=settled) - settled, 0.0)
    within = lag <= bound
    if not within:
        slowest = max((r for r in after if r.version != agreed), key=lambda r: r.complete)
        findings.add(
            AnomalyKind.SLOW_CONVERGENCE,
            slowest,
            agreed,
            f"still behind {lag:.3f} s after the last write (bound {bound:.3f} s)",
        )
    return Convergence(product_id, settled, agreed, lag, readers, within)
