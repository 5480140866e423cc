"""What users bring from other tools: tpetune.fmin (hyperopt's fmin), its Trials view and
hyperopt documents, and the import of hyperopt Trials pickles."""
