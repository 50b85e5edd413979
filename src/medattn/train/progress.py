"""Training progress, one epoch at a time: a rich bar on a terminal, one plain line per epoch elsewhere.

A run whose output goes to a file or a pipe (a batch job, `nohup`, `> train.log`) gets a line per epoch,
like the `study run` workers' lines, so that a log shows the run is alive and how far it is:

    epoch 3/10: loss 0.4123, val balanced_accuracy 0.7012, 812 img/s, 1m 20s left

img/s is the training throughput of that epoch; the time left is the mean wall time of the epochs so far
(training and validation) times the epochs still to run, an upper bound when early stopping ends the run
sooner.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

logger = logging.getLogger(__name__)
Log = Callable[[str], None]


def duration(seconds: float) -> str:
    """A short human duration: 45s, 3m 05s, 2h 07m."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


class EpochProgress:
    """Context manager reporting each epoch of a run: a bar on a terminal, else a line through `log`.

    Args:
        epochs: the most epochs the run will train.
        enabled: False reports nothing (tuning trials, study workers: they report per run).
        metric: the validation metric shown (the one the run selects its epoch on).
        log: where the per-epoch lines go when there is no terminal (default: this module's logger at INFO;
            `medattn train` prints them).
        console: the console whose terminal-ness decides bar or lines (default: stdout's).
    """

    def __init__(self, epochs: int, enabled: bool = True, metric: str = "balanced_accuracy", log: Log | None = None,
                 console: Console | None = None) -> None:
        self.epochs, self.metric, self.log = epochs, metric, log or logger.info
        console = console or Console()
        self.bar = enabled and console.is_terminal
        self.lines = enabled and not self.bar
        self.progress = Progress(
            TextColumn("epoch"), MofNCompleteColumn(), BarColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), console=console, transient=False, disable=not self.bar,
        )

    def __enter__(self) -> EpochProgress:
        self.progress.__enter__()
        self.task = self.progress.add_task("train", total=self.epochs, info="")
        self.start = time.perf_counter()
        return self

    def update(self, epoch: int, loss: float, val_score: float, images_per_s: float) -> None:
        """Report epoch `epoch` (1-based): its training loss, validation score and training img/s."""
        left = (time.perf_counter() - self.start) / epoch * (self.epochs - epoch)
        info = f"loss {loss:.4f}, val {self.metric} {val_score:.4f}, {images_per_s:.0f} img/s"
        if self.bar:
            self.progress.update(self.task, completed=epoch, info=f"{info}, {duration(left)} left")
        if self.lines:
            self.log(f"epoch {epoch}/{self.epochs}: {info}, " + (f"{duration(left)} left" if epoch < self.epochs
                                                                   else "done"))

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)
