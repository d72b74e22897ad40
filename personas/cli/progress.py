"""Progress lines for ``personas run`` in a terminal, fed by the run driver's stream."""

from __future__ import annotations

from typing import Any

__all__ = ["ProgressView"]


class ProgressView:
    """rich progress lines: one per node (spinner, then a tick) and one per counted phase (a bar)."""

    def __init__(self, console: Any) -> None:
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            SpinnerColumn(finished_text="[green]✓[/green]"),
            TextColumn("{task.description:<16}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.lines: dict[str, Any] = {}
        self.running: dict[str, str] = {}  # task id -> node name, in start order
        self.owner: dict[str, str] = {}  # phase -> the node that reported it
        self.known_total: set[str] = set()

    def __enter__(self) -> ProgressView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _line(self, name: str) -> Any:
        if name not in self.lines:
            self.lines[name] = self.progress.add_task(name, total=None, count="")
        return self.lines[name]

    def feed(self, mode: str, chunk: Any) -> None:
        if mode == "tasks" and isinstance(chunk, dict):
            name, task_id = str(chunk.get("name")), str(chunk.get("id"))
            if "result" not in chunk and "error" not in chunk:  # a node starts
                self.running[task_id] = name
                self._line(name)
                return
            self.running.pop(task_id, None)
            if chunk.get("error") or chunk.get("interrupts"):
                return
            for phase in [name, *(p for p, node in self.owner.items() if node == name)]:
                if phase not in self.known_total:  # counts without a total: it is complete when its node ends
                    task = next((t for t in self.progress.tasks if t.id == self.lines.get(phase)), None)
                    done = int(task.completed) if task is not None and task.completed else 1
                    self.progress.update(self._line(phase), total=done, completed=done)
        elif mode == "custom" and isinstance(chunk, dict) and "phase" in chunk:
            phase = str(chunk["phase"])
            if self.running and phase not in self.owner:
                self.owner[phase] = list(self.running.values())[-1]
            done, total, unit = int(chunk.get("done") or 0), chunk.get("total"), str(chunk.get("unit") or "")
            if total:
                self.known_total.add(phase)
            count = f"{done:,}/{int(total):,} {unit}" if total else f"{done:,} {unit}"
            self.progress.update(self._line(phase), total=total or None, completed=done, count=count.strip())
