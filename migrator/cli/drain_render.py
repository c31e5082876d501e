"""How a drain report reads on a terminal: the verdict, what remains where, workers, warnings, stray enqueues."""
from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from migrator.drain.values import ANY_JOB, DrainReport, Remaining, SideReport

WHY = {"fallback": "fallback: postgres was unreachable", "refused": "postgres could not carry the payload"}
LISTED_LIMIT = 50  # rows of finished/failed/canceled jobs shown: a record, not the point


def render(out: Console, report: DrainReport, note: str = "") -> None:
    for side in report.sides:
        _side(out, side)
    for w in report.warnings:
        out.print(f"[yellow]warning[/] ({w.kind}, {w.backend}): {w.message}")
    if report.strays:
        out.print(_strays(report))
    elif report.strays_checked:
        out.print("no stray enqueues: nothing routed to postgres arrived in RQ after its flip")
    for t in report.routed_back:
        out.print(escape(f"router enqueues, not strays: {t.count} {t.job_name} sent to RQ by the router "
                         f"({WHY[t.why]}) between {t.first_seen:%H:%M:%S} and {t.last_seen:%H:%M:%S}"), soft_wrap=True)
    if note:
        out.print(f"[dim]{note}[/]")
    out.print(verdict(report))


def verdict(report: DrainReport) -> Text:
    scope = f"job {report.job_name}" if report.job_name else "all jobs"
    where = ", ".join(str(s.backend) for s in report.sides)
    if report.ok:
        return Text.from_markup(f"[bold green]drained[/]: nothing of {scope} left on {where}")
    totals = ", ".join(f"{b} {n}" for b, n in report.totals().items())
    if report.drained:
        return Text.from_markup(f"[bold red]not safe[/]: {scope} drained on {where}, but "
                                f"{sum(t.count for t in report.strays)} stray enqueues reached RQ after the flip")
    of = f" of {report.job_name}" if report.job_name else ""
    return Text.from_markup(f"[bold red]not drained[/]: {sum(report.totals().values())} jobs{of} remain ({totals})")


def _side(out: Console, side: SideReport) -> None:
    pending = [r for r in side.rows if r.pending]
    listed = [r for r in side.rows if not r.pending]
    if pending:
        out.print(_table(f"{side.backend}: what remains", pending))
    else:
        out.print(f"{side.backend}: nothing pending")
    if listed:
        out.print(_table(f"{side.backend}: done, listed only (not pending)", listed[:LISTED_LIMIT], dim=True))
    if not side.per_job:
        out.print(f"[dim]{side.backend}: counted from sizes, job names not read (too many jobs); "
                  "use --job JOB for one job name[/]")
    alive = [w for w in side.workers if w.alive]
    dead = [w for w in side.workers if not w.alive]
    names = ", ".join(f"{w.name} [{','.join(w.queues)}] {w.detail}" for w in alive) or "none"
    out.print(f"{side.backend} workers alive: {len(alive)} ({names})")
    for w in dead:
        out.print(f"[dim]{side.backend} worker {w.name} is registered but dead: {w.detail}[/]")


def _table(title: str, rows: list[Remaining], dim: bool = False) -> Table:
    table = Table(title=title, title_justify="left", style="dim" if dim else "")
    for name, justify in (("queue", "left"), ("job", "left"), ("state", "left"), ("count", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(r.queue, "(all)" if r.job_name == ANY_JOB else r.job_name, str(r.place), str(r.count))
    return table


def _strays(report: DrainReport) -> Table:
    table = Table(title="stray enqueues: flipped jobs still arriving in RQ (a process enqueues without the router)",
                  title_justify="left")
    for name in ("job", "count", "first seen", "last seen", "routed to postgres since"):
        table.add_column(name)
    for t in report.strays:
        table.add_row(t.job_name, str(t.count), t.first_seen.isoformat(timespec="seconds"),
                      t.last_seen.isoformat(timespec="seconds"), t.routed_since.isoformat(timespec="seconds"))
    return table


def progress(report: DrainReport, waited: float, timeout: float, quiet_for: float, quiet: float) -> RenderableType:
    """The live view while waiting: what remains per backend and state, and the clocks."""
    table = Table(title="waiting for drain", title_justify="left")
    for name in ("backend", "state", "count"):
        table.add_column(name)
    for (backend, place), n in sorted(report.by_place().items()):
        table.add_row(str(backend), str(place), str(n))
    if report.ok:
        status = f"drained, quiet for {quiet_for:.1f}s of {quiet:g}s"
    else:
        status = f"{sum(report.totals().values())} pending, {len(report.strays)} stray job names"
    return Group(table, Text(f"{status} · waited {waited:.1f}s of {timeout:g}s"))
