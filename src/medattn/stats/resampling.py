"""Default numbers of resamples, one home for each: Monte Carlo permutation tests and percentile bootstraps.

A Monte Carlo permutation p-value is (1 + #{T* >= T}) / (1 + B) (Davison and Hinkley, "Bootstrap Methods and
their Application", 1997, section 4.3), so B = 999 permutations resolve p to 0.001. Bootstrap sizes follow the
cost of one resample: the CMI interval recomputes a contingency table per feature and run (200), the shortcut
probes' intervals are vectorised over images (1000), the report's paired test-set bootstrap of a model difference
is drawn once per comparison (2000). Every size can be changed where it is used (CLI options, the study spec's
`features:` block); these are only the defaults.
"""

PERMUTATIONS = 999  # conditional-independence permutation test of feature usage (analysis/citest.py)
CMI_BOOTSTRAP = 200  # percentile interval of a feature's conditional mutual information (analysis/citest.py)
PROBE_BOOTSTRAP = 1000  # percentile intervals of the shortcut probes over images (analysis/probes.py)
COMPARISON_BOOTSTRAP = 2000  # paired, class-stratified test-set bootstrap of a model difference (stats/bootstrap.py)
