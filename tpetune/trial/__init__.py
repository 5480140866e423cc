"""What an objective may know and call while it runs: the trial context,
report/should_prune/TrialPruned."""
