"""Slots: how planned runs map to Optuna trials so that each run is done exactly once.

Every planned run is a *slot* of an Optuna study: tuning trial k of a (dataset, model) is slot k of its
tuning study, the final run with seed s is slot s of its final study. A slot is represented by trials
whose user attr `slot` holds the key; they are created WAITING (`enqueue_trial`) and claimed atomically
by a worker (WAITING -> RUNNING is a compare-and-set in both the journal and the RDB storage).

Invariants, enforced here and nowhere else:
- at most one trial of a slot is ever counted: the *live* trial is the lowest-numbered trial that has
  not failed; a claimed trial that is not the live one marks itself failed as a duplicate and is skipped
  (duplicates arise when two workers top up the same slot at once, or a retry races a top-up);
- a slot whose trials all failed gets a new WAITING trial (`top_up`) until it has failed
  `max_retries + 1` times (crashes, not interruptions), after which it counts as failed;
- a finished (COMPLETE or PRUNED) slot is never touched again, so finished runs are never redone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

SLOT_ATTR = "slot"
STAGE_ATTR = "stage"
SEED_ATTR = "seed"
DUPLICATE_ATTR = "medattn:duplicate"
INTERRUPTED_ATTR = "medattn:interrupted"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass
class SlotState:
    """The trials of one slot: the live one, the finished one, and how many attempts crashed."""

    key: int
    live: FrozenTrial | None = None
    done: FrozenTrial | None = None
    failures: int = 0

    def status(self, max_retries: int) -> str:
        """`done`, `running`, `failed` (retries exhausted) or `pending`."""
        if self.done is not None:
            return "done"
        if self.live is not None and self.live.state == TrialState.RUNNING:
            return "running"
        if self.live is None and self.failures > max_retries:
            return "failed"
        return "pending"

    def settled(self, max_retries: int) -> bool:
        """True when nothing more will happen to this slot."""
        return self.status(max_retries) in ("done", "failed")


def slot_states(trials: Iterable[FrozenTrial], keys: Sequence[int]) -> dict[int, SlotState]:
    """Group a study's trials by slot key; trials of other slots (or none) are ignored."""
    states = {k: SlotState(k) for k in keys}
    for trial in sorted(trials, key=lambda t: t.number):
        state = states.get(trial.user_attrs.get(SLOT_ATTR))
        if state is None:
            continue
        if trial.state == TrialState.FAIL:
            if not trial.system_attrs.get(DUPLICATE_ATTR) and not trial.system_attrs.get(INTERRUPTED_ATTR):
                state.failures += 1
            continue
        if state.live is None:
            state.live = trial
        if trial.state in FINISHED and state.done is None:
            state.done = trial
    return states


def top_up(study: optuna.Study, states: dict[int, SlotState], stage: str, max_retries: int) -> int:
    """Enqueue a WAITING trial for every slot without a live trial and with retries left; returns how many."""
    added = 0
    for key, state in states.items():
        if state.live is None and state.done is None and state.failures <= max_retries:
            attrs = {SLOT_ATTR: key, STAGE_ATTR: stage}
            if stage == "final":
                attrs[SEED_ATTR] = key
            study.enqueue_trial({}, user_attrs=attrs)
            added += 1
    return added


def claim(storage: BaseStorage, study_id: int, keys: Sequence[int]) -> FrozenTrial | None:
    """Atomically take one WAITING trial of a planned slot and return it RUNNING, or None if none is free."""
    wanted = set(keys)
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        if trial.user_attrs.get(SLOT_ATTR) not in wanted:
            continue
        try:
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.RUNNING):
                continue
        except UpdateFinishedTrialError:
            continue
        record = getattr(storage, "record_heartbeat", None)
        if record is not None:
            record(trial._trial_id)
        if _is_live(storage, study_id, trial):
            return storage.get_trial(trial._trial_id)
        mark_failed(storage, trial._trial_id, DUPLICATE_ATTR)
    return None


def _is_live(storage: BaseStorage, study_id: int, mine: FrozenTrial) -> bool:
    """Whether no other unfailed trial of the same slot comes first or has already finished."""
    slot = mine.user_attrs.get(SLOT_ATTR)
    for other in storage.get_all_trials(study_id, deepcopy=False):
        if other.number == mine.number or other.user_attrs.get(SLOT_ATTR) != slot:
            continue
        if other.state == TrialState.FAIL:
            continue
        if other.number < mine.number or other.state in FINISHED:
            return False
    return True


def mark_failed(storage: BaseStorage, trial_id: int, reason_attr: str | None = None) -> bool:
    """Set a running trial FAIL (tagged with `reason_attr`); False if it had already finished."""
    try:
        if reason_attr is not None:
            storage.set_trial_system_attr(trial_id, reason_attr, True)
        storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
        return True
    except UpdateFinishedTrialError:
        return False
