"""The shared Keras trial machinery: KerasTrial (folds, backups, seeding), its callbacks and
optimizers, fold results, compiled-model reuse and lean fit inputs. Imports Keras; nothing in
the core imports this package."""
