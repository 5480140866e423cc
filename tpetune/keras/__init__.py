"""The shared Keras trial machinery: KerasTrial (folds, backups, seeding), its callbacks and
optimizers. Imports Keras; nothing in the core imports this package."""
