"""Search spaces and how to search them: loading hp trees, fingerprints, values <-> hyperopt
assignments, the algorithm table and grid search. Imports hyperopt only inside functions."""
