"""Statistics on the tidy results table: paired tests, corrections, intervals, Bayesian comparison, rankings.

Test statistics come from scipy, statsmodels, scikit-posthocs and baycomp; this package is the glue
that pairs runs by seed, orients differences, handles degenerate cases and phrases verdicts.

Exports load on first use (`medattn.lazy`), so that importing one module of the package (e.g. the CLI's
`medattn.stats.resampling` defaults) does not import scipy, statsmodels and baycomp.
"""

from medattn.lazy import lazy_exports

_HOMES = {
    "COMPARISON_COLUMNS": "medattn.stats.compare",
    "best_baselines": "medattn.stats.compare",
    "compare_models": "medattn.stats.compare",
    "comparison_pairs": "medattn.stats.compare",
    "VERDICTS": "medattn.stats.verdict",
    "VERDICT_LEGEND": "medattn.stats.verdict",
    "VERDICT_MARKS": "medattn.stats.verdict",
    "decide": "medattn.stats.verdict",
    "describe_comparison": "medattn.stats.verdict",
    "describe_comparisons": "medattn.stats.verdict",
    "BootstrapResult": "medattn.stats.bootstrap",
    "bootstrap_indices": "medattn.stats.bootstrap",
    "paired_bootstrap": "medattn.stats.bootstrap",
    "stratified_bootstrap_indices": "medattn.stats.bootstrap",
    "CrossDatasetResult": "medattn.stats.ranking",
    "FriedmanResult": "medattn.stats.ranking",
    "average_ranks": "medattn.stats.ranking",
    "compare_across_datasets": "medattn.stats.ranking",
    "critical_difference": "medattn.stats.ranking",
    "friedman_test": "medattn.stats.ranking",
    "iman_davenport": "medattn.stats.ranking",
    "nemenyi_q": "medattn.stats.ranking",
    "nemenyi_test": "medattn.stats.ranking",
    "rank_table": "medattn.stats.ranking",
    "score_matrix": "medattn.stats.ranking",
    "PairedResult": "medattn.stats.paired",
    "cohens_dz": "medattn.stats.paired",
    "hedges_correction": "medattn.stats.paired",
    "paired_difference": "medattn.stats.paired",
    "paired_t": "medattn.stats.paired",
    "detectable_effect_size": "medattn.stats.power",
    "minimum_detectable_difference": "medattn.stats.power",
    "holm": "medattn.stats.correction",
    "posterior_parameters": "medattn.stats.bayes",
    "rope_probabilities": "medattn.stats.bayes",
    "summarize": "medattn.stats.summary",
    "higher_is_better": "medattn.rundir.metrics",
    "validate_results": "medattn.rundir.table",
}
__all__ = list(_HOMES)
__getattr__ = lazy_exports(__name__, _HOMES)
