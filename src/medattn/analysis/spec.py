"""The `features:` block of a study spec: feature usage and shortcut probes run at the end of `medattn study run`.

    features:
      epochs: [5, 10, best]        # saved checkpoints (train.save_epochs) and/or the kept (best-validation)
                                   # weights; 'final' is accepted as an alias of 'best'
      alpha: 0.05                  # level the corrected p-values are read at (sets the permutation budget)
      file: extra_features.csv     # optional CSV with an id column (as `medattn features --features`)
      correction: holm             # holm | bh, across the features of one run and epoch
      probes: [patch, ruler, ink]  # artefacts to insert (empty: no probes)
      split: test                  # the split both are measured on: val, test or test_NAME (e.g. test_ood,
                                   # where a planted artefact is independent of the class: the usage test's
                                   # most powerful split, every class holding images with and without it)
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from medattn.schema import Strict
from medattn.stats.resampling import PERMUTATIONS


class FeaturesSpec(Strict):
    """Which epochs, extra features, correction, probes and resampling sizes the feature analysis uses."""

    epochs: list[int | Literal["best", "final"]] = Field(default_factory=lambda: ["best"], min_length=1)
    file: str | None = None
    id_column: str | None = None
    correction: Literal["holm", "bh"] = "holm"
    probes: list[str] = Field(default_factory=list)
    permutations: int = Field(PERMUTATIONS, ge=19)
    alpha: float = Field(0.05, gt=0, lt=1)
    include_derived: bool = False
    split: str = Field("test", pattern=r"^(val|test|test_\w+)$")

    @field_validator("probes")
    @classmethod
    def _known_artefacts(cls, value: list[str]) -> list[str]:
        from medattn.analysis.probes import ARTEFACTS, REAL_ARTEFACTS  # (imports torch: only when probes are given)

        names = ARTEFACTS + REAL_ARTEFACTS
        unknown = [v for v in value if v not in names]
        if unknown:
            raise ValueError(f"unknown artefact '{unknown[0]}'; valid names: {', '.join(names)}")
        return value

    @field_validator("epochs")
    @classmethod
    def _positive(cls, value: list) -> list:
        if any(isinstance(e, int) and e < 1 for e in value):
            raise ValueError("epochs are positive numbers of saved checkpoints (train.save_epochs) or 'best'")
        return value


def run_feature_analysis(spec: FeaturesSpec, out_dir: Path) -> list[Path]:
    """Write features/usage.csv (and features/probes.csv when probes are asked for); return the files written."""
    from medattn.analysis.probes import PROBES_FILE, ProbeOptions, probe_table
    from medattn.analysis.usage import FEATURES_DIR, USAGE_FILE, UsageOptions, usage_table

    usage_table(out_dir, UsageOptions(epochs=spec.epochs, features_file=spec.file, id_column=spec.id_column,
                                      correction=spec.correction, permutations=spec.permutations,
                                      alpha=spec.alpha, include_derived=spec.include_derived,
                                      split=spec.split))
    written = [out_dir / FEATURES_DIR / USAGE_FILE]
    if spec.probes:
        probe_table(out_dir, ProbeOptions(artefacts=tuple(spec.probes), split=spec.split))
        written.append(out_dir / FEATURES_DIR / PROBES_FILE)
    return written


def unsaved_epochs(spec: FeaturesSpec, save_epochs: list[int]) -> list[int]:
    """The epochs `features.epochs` asks for that `train.save_epochs` does not save."""
    return [e for e in spec.epochs if isinstance(e, int) and e not in save_epochs]
