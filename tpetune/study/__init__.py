"""The study store and what it keeps: the SQLite store (meta, trials, steps with recorded
decisions), kept model files, provenance, and the read-only Study view. The store records
pruning decisions but never imports a pruner."""
