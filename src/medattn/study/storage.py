"""Optuna storages with heartbeats: a journal file (default, nothing to start) or any SQLAlchemy URL.

Both kinds implement Optuna's heartbeat protocol, so `optuna.storages.fail_stale_trials` marks the
trials of a worker that stopped heartbeating as failed and `RetryHeartbeatStaleTrialCallback` enqueues
them again. Optuna 5's RDBStorage has heartbeats built in; its JournalStorage does not, so
`HeartbeatJournalStorage` adds them: a running trial's heartbeat is a timestamp in its system attrs.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from medattn.errors import SpecError

HEARTBEAT_ATTR = "medattn:heartbeat"

StaleCallback = Callable[[optuna.Study, FrozenTrial], None]


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """A JournalStorage whose running trials record heartbeats, so stale ones can be failed and retried.

    Args:
        path: the journal file.
        heartbeat_interval: seconds between heartbeats of a running trial.
        grace_period: seconds without a heartbeat after which a running trial counts as stale.
        stale_callback: called with (study, trial) for every stale trial failed (e.g. a retry callback).
    """

    def __init__(self, path: str | Path, heartbeat_interval: int, grace_period: int,
                 stale_callback: StaleCallback | None = None) -> None:
        super().__init__(JournalFileBackend(str(path)))
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.stale_callback = stale_callback

    def record_heartbeat(self, trial_id: int) -> None:
        """Store the current time as the trial's last heartbeat."""
        self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """Running trials whose last heartbeat (or start) is older than the grace period."""
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            started = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
            # A retried trial inherits its predecessor's system attrs, so never look before its own start.
            last = max(float(trial.system_attrs.get(HEARTBEAT_ATTR, 0.0)), started)
            if now - last > self.grace_period:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int:
        """Seconds between heartbeats."""
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> StaleCallback | None:
        """Called for every trial failed as stale (enqueues its retry)."""
        return self.stale_callback


def open_storage(url: str, heartbeat_interval: int, grace_period: int, max_retries: int) -> BaseStorage:
    """The storage a plan's URL names (`journal:PATH` or an SQLAlchemy URL), with heartbeats and retries."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retries)
        if url.startswith("journal:"):
            path = Path(url.removeprefix("journal:"))
            path.parent.mkdir(parents=True, exist_ok=True)
            return HeartbeatJournalStorage(path, heartbeat_interval, grace_period, retry)
        try:
            rdb = RDBStorage(url, engine_kwargs={"pool_pre_ping": True}, heartbeat_interval=heartbeat_interval,
                             grace_period=grace_period, heartbeat_stale_trial_callback=retry)
            # Optuna wraps an RDBStorage in its caching layer whenever a study is made from it; do it once
            # here so that claiming (this module's slots) and Trial objects use the same storage object.
            return optuna.storages.get_storage(rdb)
        except Exception as exc:  # sqlalchemy / driver errors: unreachable server, bad credentials, no driver
            raise SpecError(f"storage {_redact(url)}: cannot open ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}); check that the database "
                            f"server runs and the URL, user and password are right") from None


def _redact(url: str) -> str:
    """The URL with its password replaced by ***."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


class Heartbeat:
    """Context manager: a daemon thread recording a trial's heartbeat every interval while it runs."""

    def __init__(self, storage: BaseStorage, trial_id: int, interval: float) -> None:
        self.storage = storage
        self.trial_id = trial_id
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{trial_id}", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)  # type: ignore[attr-defined]
            except optuna.exceptions.UpdateFinishedTrialError:
                return  # the trial was taken over (failed as stale) or has finished
            except Exception:  # a transient storage error must not kill training; the next beat retries
                continue

    def __enter__(self) -> Heartbeat:
        self.storage.record_heartbeat(self.trial_id)  # type: ignore[attr-defined]
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
