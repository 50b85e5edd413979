"""A rich progress bar showing epoch, training loss and validation balanced accuracy."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class EpochProgress:
    """Context manager around a rich Progress with one task for the epochs of a run (silent if disabled)."""

    def __init__(self, epochs: int, enabled: bool = True) -> None:
        self.enabled = enabled
        self.epochs = epochs
        self.progress = Progress(
            TextColumn("epoch"), MofNCompleteColumn(), BarColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), transient=False, disable=not enabled,
        )

    def __enter__(self) -> EpochProgress:
        self.progress.__enter__()
        self.task = self.progress.add_task("train", total=self.epochs, info="")
        return self

    def update(self, epoch: int, loss: float, val_bacc: float) -> None:
        """Advance to `epoch` and show its loss and validation balanced accuracy."""
        self.progress.update(self.task, completed=epoch, info=f"loss {loss:.4f}  val bal.acc {val_bacc:.4f}")

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)
