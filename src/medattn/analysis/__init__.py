"""Feature usage (conditional independence tests over checkpoints), ABCD features and shortcut probes."""
