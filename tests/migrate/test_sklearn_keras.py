"""The seed course's flow, scikeras' KerasClassifier in a SearchCV: one line changes."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("scikeras")
from scipy.stats import loguniform
from sklearn.model_selection import RandomizedSearchCV  # noqa: F401 (the line we replace)

import tpetune
from tpetune.sklearn import TPESearchCV

pytestmark = pytest.mark.keras


def build_model(units: int = 8, meta: dict[str, Any] | None = None) -> Any:
    import keras

    assert meta is not None
    model = keras.Sequential(
        [
            keras.Input((meta["n_features_in_"],)),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dense(meta["n_classes_"], activation="softmax"),
        ]
    )
    return model


def test_keras_classifier_with_tpe_search_cv_resumes(tmp_path: Path) -> None:
    from scikeras.wrappers import KerasClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4)).astype("float32")
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    clf = KerasClassifier(
        model=build_model,
        loss="sparse_categorical_crossentropy",
        optimizer="adam",
        epochs=2,
        batch_size=32,
        verbose=0,
        random_state=0,
    )
    dist = {
        "model__units": [4, 8, 16],
        "optimizer__learning_rate": loguniform(1e-3, 1e-1),
        "batch_size": [16, 32],
    }
    # was: RandomizedSearchCV(clf, dist, n_iter=2, cv=2, random_state=0)
    search = TPESearchCV(clf, dist, n_iter=2, cv=2, random_state=0, study_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X, y)
        assert len(search.cv_results_["params"]) == 2
        assert search.best_params_["model__units"] in (4, 8, 16)
        assert search.predict(X).shape == (120,)
        assert search.predict_proba(X).shape == (120, 2)
        assert 0.0 <= search.score(X, y) <= 1.0
        resumed = TPESearchCV(clf, dist, n_iter=3, cv=2, random_state=0, study_dir=tmp_path)
        resumed.fit(X, y)
    assert resumed.cv_results_["params"][:2] == search.cv_results_["params"]
    assert [r.tid for r in tpetune.load_study(tmp_path).records] == [0, 1, 2]
