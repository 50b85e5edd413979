"""Statistics on the tidy results table: paired tests, corrections, intervals, Bayesian comparison, rankings.

Test statistics come from scipy, statsmodels, scikit-posthocs and baycomp; this package is the glue
that pairs runs by seed, orients differences, handles degenerate cases and phrases verdicts.
"""

from medattn.rundir.metrics import higher_is_better
from medattn.rundir.table import validate_results
from medattn.stats.bayes import posterior_parameters, rope_probabilities
from medattn.stats.bootstrap import (
    BootstrapResult,
    bootstrap_indices,
    paired_bootstrap,
    stratified_bootstrap_indices,
)
from medattn.stats.compare import COMPARISON_COLUMNS, best_baselines, compare_models, comparison_pairs
from medattn.stats.correction import holm
from medattn.stats.paired import PairedResult, cohens_dz, hedges_correction, paired_difference, paired_t
from medattn.stats.power import detectable_effect_size, minimum_detectable_difference
from medattn.stats.ranking import (
    CrossDatasetResult,
    FriedmanResult,
    average_ranks,
    compare_across_datasets,
    critical_difference,
    friedman_test,
    iman_davenport,
    nemenyi_q,
    nemenyi_test,
    rank_table,
    score_matrix,
)
from medattn.stats.summary import summarize
from medattn.stats.verdict import (
    VERDICT_LEGEND,
    VERDICT_MARKS,
    VERDICTS,
    decide,
    describe_comparison,
    describe_comparisons,
)

__all__ = [
    "COMPARISON_COLUMNS",
    "VERDICTS",
    "VERDICT_LEGEND",
    "VERDICT_MARKS",
    "BootstrapResult",
    "CrossDatasetResult",
    "FriedmanResult",
    "PairedResult",
    "average_ranks",
    "best_baselines",
    "bootstrap_indices",
    "cohens_dz",
    "compare_across_datasets",
    "compare_models",
    "comparison_pairs",
    "critical_difference",
    "decide",
    "describe_comparison",
    "describe_comparisons",
    "detectable_effect_size",
    "friedman_test",
    "hedges_correction",
    "holm",
    "iman_davenport",
    "minimum_detectable_difference",
    "nemenyi_q",
    "nemenyi_test",
    "paired_bootstrap",
    "paired_difference",
    "paired_t",
    "posterior_parameters",
    "rank_table",
    "rope_probabilities",
    "score_matrix",
    "stratified_bootstrap_indices",
    "summarize",
    "higher_is_better",
    "validate_results",
]
