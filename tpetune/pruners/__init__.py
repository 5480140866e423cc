"""Which trials stop early: the Pruner protocol, every policy, and the Keras callback over the
trial-side API."""
