"""Turn a RunView into something to look at: a rich layout, or one plain line."""

from __future__ import annotations

from typing import Any

from ._view import RunView

_STATUS_ORDER = (
    "queued",
    "pending",
    "waiting",
    "running",
    "completed",
    "failed",
    "timeout",
    "cancelled",
)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def progress_text(view: RunView, now: float) -> str:
    share = view.finished / view.total * 100 if view.total else 0.0
    return (
        f"{view.finished}/{view.total} finished ({share:.0f}%)  "
        f"{view.rate(now):.1f}/s  ETA {_duration(view.eta(now))}  "
        f"elapsed {_duration(view.elapsed(now))}"
    )


def counts_text(view: RunView) -> str:
    return "  ".join(
        f"{status} {view.counts[status]}" for status in _STATUS_ORDER if view.counts[status]
    )


def plain_line(view: RunView, now: float) -> str:
    """One timestamped progress line, for logs and pipes."""
    line = f"[+{view.elapsed(now):8.2f}s] {progress_text(view, now)} | {counts_text(view)}"
    if view.agents:
        online = sum(row.status != "offline" for row in view.agents.values())
        line += f" | agents {online}/{len(view.agents)} online, reassigned {view.reassigned}"
    return line


def rich_view(view: RunView, now: float, title: str = "trioflow") -> Any:
    """A rich renderable: progress, counts, running tasks, agents, recent failures."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    progress = Table.grid(padding=(0, 2))
    progress.add_row(
        ProgressBar(total=max(view.total, 1), completed=view.finished, width=40),
        Text(progress_text(view, now)),
    )
    parts: list[Any] = [
        Text(title, style="bold"),
        progress,
        Text(counts_text(view) or "no tasks yet", style="cyan"),
    ]
    if view.running:
        table = Table(title="running", title_justify="left", expand=False)
        table.add_column("task")
        table.add_column("attempt", justify="right")
        table.add_column("elapsed", justify="right")
        if any(r.agent_id is not None for r in view.running.values()):
            table.add_column("agent")
        longest = sorted(view.running.values(), key=lambda r: r.since)[:10]
        for row in longest:
            cells = [str(row.task_id), str(row.attempt), _duration(now - row.since)]
            if len(table.columns) == 4:
                cells.append("" if row.agent_id is None else str(row.agent_id))
            table.add_row(*cells)
        if len(view.running) > len(longest):
            table.caption = f"and {len(view.running) - len(longest)} more"
        parts.append(table)
    if view.agents:
        table = Table(title="agents", title_justify="left")
        for column in (
            "agent",
            "status",
            "in flight",
            "completed",
            "failed",
            "reassigned",
            "restarts",
            "last heartbeat",
        ):
            table.add_column(column, justify="left" if column in ("agent", "status") else "right")
        for agent_id, row in view.agents.items():
            style = {"offline": "red", "busy": "yellow"}.get(row.status, "green")
            table.add_row(
                str(agent_id),
                Text(row.status, style=style),
                str(row.in_flight),
                str(row.completed),
                str(row.failed),
                str(row.reassigned),
                str(row.restarts),
                "–" if row.last_heartbeat is None else f"{_duration(now - row.last_heartbeat)} ago",
            )
        parts.append(table)
    if view.failures:
        table = Table(title="recent failures", title_justify="left")
        for column in ("at", "what", "status", "error"):
            table.add_column(column)
        for failure in view.failures:
            table.add_row(
                f"+{failure.at - view.started:.2f}s", failure.what, failure.status, failure.error
            )
        parts.append(table)
    return Group(*parts)
