"""tpetune.sklearn.TPESearchCV with real scikit-learn: RandomizedSearchCV's interface,
scikit-learn's own estimator checks, resume, error_score, Pipelines and hyperopt spaces."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

pytest.importorskip("sklearn")
from hyperopt import hp
from scipy.stats import expon, loguniform, randint, uniform
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RandomizedSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.estimator_checks import parametrize_with_checks

import tpetune
from tpetune.errors import ConfigError, SpaceError
from tpetune.migrate.sklearn_space import to_hyperopt
from tpetune.sklearn import TPESearchCV

X, Y = load_iris(return_X_y=True)
DIST = {"C": loguniform(1e-2, 1e2), "fit_intercept": [True, False]}


@pytest.fixture(autouse=True)
def _quiet() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence and fit-failure warnings are expected
        yield


class Counting(BaseEstimator, ClassifierMixin):  # type: ignore[misc]
    """LogisticRegression that counts its fits (class-wide: the search clones it), and fails
    for ``C`` above ``fail_above``."""

    fits: ClassVar[int] = 0

    def __init__(self, C: float = 1.0, fail_above: float = np.inf) -> None:
        self.C = C
        self.fail_above = fail_above

    def fit(self, X: Any, y: Any) -> Counting:
        type(self).fits += 1
        if self.C > self.fail_above:  # noqa: SIM300 (C is not a constant)
            raise RuntimeError(f"C={self.C} too large")
        self.model_ = LogisticRegression(C=self.C, max_iter=300).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X: Any) -> Any:
        return self.model_.predict(X)


#: A list, not a scipy distribution: the test ids hold the repr, and a frozen distribution's
#: holds its address (pytest-xdist needs the same ids in every worker).
CHECKED = TPESearchCV(LogisticRegression(), {"C": [0.01, 0.1, 1.0, 10.0]}, n_iter=2, cv=2,
                      random_state=0)  # fmt: skip


@parametrize_with_checks([CHECKED])
def test_sklearn_estimator_checks(estimator: Any, check: Any) -> None:
    check(estimator)


def test_cv_results_have_randomized_search_cvs_keys_and_best_is_consistent() -> None:
    ours = TPESearchCV(LogisticRegression(max_iter=300), DIST, n_iter=5, cv=3, random_state=0)
    theirs = RandomizedSearchCV(LogisticRegression(max_iter=300), DIST, n_iter=5, cv=3,
                                random_state=0)  # fmt: skip
    ours.fit(X, Y)
    theirs.fit(X, Y)
    assert sorted(ours.cv_results_) == sorted(theirs.cv_results_)
    res = ours.cv_results_
    assert len(res["params"]) == 5
    assert ours.best_index_ == int(np.argmax(res["mean_test_score"]))
    assert ours.best_params_ == res["params"][ours.best_index_]
    assert ours.best_score_ == res["mean_test_score"].max()
    assert ours.best_estimator_.C == ours.best_params_["C"]  # noqa: SIM300
    assert list(res["param_C"]) == [p["C"] for p in res["params"]]
    assert np.allclose(
        res["mean_test_score"], np.mean([res[f"split{i}_test_score"] for i in range(3)], axis=0)
    )
    # delegation to the refitted best estimator, as RandomizedSearchCV does
    assert (ours.predict(X) == ours.best_estimator_.predict(X)).all()
    assert np.allclose(ours.predict_proba(X), ours.best_estimator_.predict_proba(X))
    assert ours.score(X, Y) == ours.best_estimator_.score(X, Y)
    # the trials are a tpetune study, losses the negative mean test scores
    losses = [r.loss for r in ours.study_.records]
    assert np.allclose(losses, -res["mean_test_score"])


def test_clone_pickle_and_params() -> None:
    search = TPESearchCV(LogisticRegression(), DIST, n_iter=3, cv=2, random_state=1)
    copy = clone(search)
    assert copy.get_params()["n_iter"] == 3 and sorted(copy.param_distributions) == sorted(DIST)
    copy.set_params(n_iter=2, estimator__C=0.5)
    assert copy.n_iter == 2 and copy.estimator.C == 0.5
    fitted = pickle.loads(pickle.dumps(copy.fit(X, Y)))
    assert (fitted.predict(X) == copy.predict(X)).all()


def test_multimetric_with_refit_and_train_scores() -> None:
    scoring = {"acc": "accuracy", "f1": "f1_macro"}
    kwargs: dict[str, Any] = dict(
        n_iter=4, cv=3, scoring=scoring, refit="f1", return_train_score=True, random_state=0
    )
    ours = TPESearchCV(LogisticRegression(max_iter=300), DIST, **kwargs).fit(X, Y)
    theirs = RandomizedSearchCV(LogisticRegression(max_iter=300), DIST, **kwargs).fit(X, Y)
    assert sorted(ours.cv_results_) == sorted(theirs.cv_results_)
    assert ours.best_score_ == ours.cv_results_["mean_test_f1"][ours.best_index_]
    assert np.allclose([r.loss for r in ours.study_.records], -ours.cv_results_["mean_test_f1"])


def test_pipeline_step_params_and_list_of_dicts() -> None:
    pipe = Pipeline([("scale", StandardScaler()), ("clf", SVC())])
    grid = [
        {"clf": [SVC()], "clf__C": loguniform(1e-2, 1e2), "scale__with_mean": [True, False]},
        {"clf": [LogisticRegression(max_iter=300)], "clf__C": uniform(0.1, 10)},
    ]
    search = TPESearchCV(pipe, grid, n_iter=8, cv=2, random_state=3).fit(X, Y)
    for params in search.cv_results_["params"]:
        assert isinstance(params["clf"], SVC | LogisticRegression)
        assert ("scale__with_mean" in params) == isinstance(params["clf"], SVC)
        if isinstance(params["clf"], LogisticRegression):
            assert 0.1 <= params["clf__C"] <= 10.1
    assert {"clf__C[0]", "clf__C[1]"} <= set(search.study_.param_labels)  # one label each
    best = search.best_estimator_.named_steps["clf"]
    assert best.C == search.best_params_["clf__C"]  # noqa: SIM300


def test_hyperopt_space_with_nested_choices() -> None:
    space = {
        "model": hp.choice(
            "model",
            [
                {"clf": SVC(), "clf__C": hp.loguniform("svc_C", -3, 3)},
                {
                    "clf": LogisticRegression(max_iter=300),
                    "clf__C": hp.loguniform("lr_C", -3, 3),
                    "clf__class_weight": hp.choice("cw", [None, {0: 2.0, 1: 1.0, 2: 1.0}]),
                },
            ],
        )
    }
    pipe = Pipeline([("scale", StandardScaler()), ("clf", SVC())])
    search = TPESearchCV(pipe, space, n_iter=6, cv=2, random_state=0).fit(X, Y)
    for params in search.cv_results_["params"]:
        assert "model" not in params and "clf__C" in params  # the branch dict is merged
        if "clf__class_weight" in params:
            assert params["clf__class_weight"] in (None, {0: 2.0, 1: 1.0, 2: 1.0})


def test_distributions_become_the_hp_nodes_that_sample_the_same_values() -> None:
    from hyperopt.pyll.stochastic import sample

    space = to_hyperopt({"n": randint(3, 6), "lr": loguniform(1e-4, 1e-1), "u": uniform(2, 3)})
    rng = np.random.default_rng(0)
    draws = [sample(space, rng=rng) for _ in range(400)]
    assert {d["n"] for d in draws} == {3, 4, 5} and all(isinstance(d["n"], int) for d in draws)
    assert all(1e-4 <= d["lr"] <= 1e-1 for d in draws)
    assert all(2 <= d["u"] <= 5 for d in draws)
    counts = np.bincount([d["n"] for d in draws])[3:]
    assert counts.min() > 100  # randint's values equally likely (ends included)


def test_a_distribution_without_hp_equivalent_is_refused_clearly() -> None:
    search = TPESearchCV(LogisticRegression(), {"C": expon()}, n_iter=2, cv=2)
    with pytest.raises(SpaceError, match=r"param_distributions\['C'\] is a expon distribution"):
        search.fit(X, Y)
    with pytest.raises(SpaceError, match="must be a list of values"):
        TPESearchCV(LogisticRegression(), {"C": 1.0}, n_iter=2, cv=2).fit(X, Y)


def test_larger_n_iter_resumes_the_study_without_refitting_stored_candidates(
    tmp_path: Path,
) -> None:
    dist = {"C": loguniform(1e-2, 1e2)}
    first = TPESearchCV(Counting(), dist, n_iter=3, cv=3, random_state=0, study_dir=tmp_path)
    first.fit(X, Y)
    before = first.cv_results_
    Counting.fits = 0
    second = clone(first).set_params(n_iter=5).fit(X, Y)
    assert Counting.fits == 2 * 3 + 1  # two new candidates x 3 folds, and the refit
    after = second.cv_results_
    assert len(after["params"]) == 5
    assert after["params"][:3] == before["params"]
    for key in ("mean_test_score", "split0_test_score", "mean_fit_time"):
        assert np.array_equal(after[key][:3], before[key])
    assert [r.tid for r in tpetune.load_study(tmp_path).records] == [0, 1, 2, 3, 4]
    # the same n_iter again: nothing new; one candidate is cross-validated for scikit-learn
    Counting.fits = 0
    third = clone(second).fit(X, Y)
    assert Counting.fits == 3 + 1
    assert third.cv_results_["params"] == after["params"]
    assert third.best_params_ == second.best_params_


def test_resume_refuses_other_data_or_estimator(tmp_path: Path) -> None:
    search = TPESearchCV(Counting(), {"C": loguniform(1e-2, 1e2)}, n_iter=2, cv=2,
                         random_state=0, study_dir=tmp_path)  # fmt: skip
    search.fit(X, Y)
    with pytest.raises(ConfigError, match="TPESearchCV: study .* was made with data="):
        clone(search).set_params(n_iter=3).fit(X[:100], Y[:100])
    with pytest.raises(ConfigError, match="was made with estimator="):
        clone(search).set_params(n_iter=3, estimator=Counting(fail_above=5)).fit(X, Y)


def test_a_foreign_study_db_is_refused_in_search_cv_words(tmp_path: Path) -> None:
    (tmp_path / "study.db").write_text("not a database")
    search = TPESearchCV(Counting(), {"C": loguniform(1e-2, 1e2)}, n_iter=2, cv=2,
                         random_state=0, study_dir=tmp_path)  # fmt: skip
    with pytest.raises(tpetune.StoreError) as caught:
        search.fit(X, Y)
    assert str(caught.value).startswith("TPESearchCV: ")
    assert str(caught.value).endswith("a tpetune run wrote, or give another study_dir")
    assert (tmp_path / "study.db").read_text() == "not a database"


def test_error_score_nan_records_failed_candidates_and_goes_on() -> None:
    search = TPESearchCV(Counting(fail_above=1.0), {"C": loguniform(1e-2, 1e2)}, n_iter=8,
                         cv=2, random_state=0)  # fmt: skip
    search.fit(X, Y)
    res = search.cv_results_
    failed = res["param_C"].data.astype(float) > 1.0
    assert failed.any() and (~failed).any()
    assert np.isnan(res["mean_test_score"][failed]).all()
    assert np.isfinite(res["mean_test_score"][~failed]).all()
    assert search.best_params_["C"] <= 1.0
    states = {r.state.value for r in search.study_.records}
    assert states == {"ok", "fail"}


def test_error_score_raise_raises_the_estimators_error() -> None:
    search = TPESearchCV(Counting(fail_above=0.0), {"C": loguniform(1e-2, 1e2)}, n_iter=3,
                         cv=2, error_score="raise")  # fmt: skip
    with pytest.raises(RuntimeError, match="too large"):
        search.fit(X, Y)


def test_n_jobs_runs_the_folds_in_parallel_processes() -> None:
    search = TPESearchCV(LogisticRegression(max_iter=300), DIST, n_iter=3, cv=2, n_jobs=2,
                         random_state=0)  # fmt: skip
    serial = clone(search).set_params(n_jobs=None)
    assert np.array_equal(
        search.fit(X, Y).cv_results_["mean_test_score"],
        serial.fit(X, Y).cv_results_["mean_test_score"],
    )


def test_import_tpetune_does_not_import_sklearn() -> None:
    code = "import sys, tpetune; print('sklearn' in sys.modules, 'pyspark' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


RESUME_SCRIPT = """
import sys, numpy as np
from scipy.stats import loguniform
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from tpetune.sklearn import TPESearchCV

def shrink(x):  # a function in the estimator: its repr holds this process's address
    return x / 10

X, y = load_iris(return_X_y=True)
pipe = make_pipeline(FunctionTransformer(shrink), LogisticRegression(max_iter=300))
search = TPESearchCV(pipe, {"logisticregression__C": loguniform(1e-2, 1e2)},
                     n_iter=int(sys.argv[1]), cv=2, random_state=0, study_dir="study")
print(len(search.fit(X, y).cv_results_["params"]))
"""


def test_a_new_process_resumes_a_study_whose_estimator_holds_a_function(tmp_path: Path) -> None:
    (tmp_path / "search.py").write_text(RESUME_SCRIPT)
    for n_iter in (2, 3):
        done = subprocess.run(
            [sys.executable, "search.py", str(n_iter)],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split()[-1] == str(n_iter)
    assert len(tpetune.load_study(tmp_path / "study").records) == 3


def test_a_callable_scoring_giving_a_dict_follows_refit() -> None:
    from sklearn.metrics import accuracy_score, f1_score

    def scores(est: Any, X: Any, y: Any) -> dict[str, float]:
        pred = est.predict(X)
        return {"acc": accuracy_score(y, pred), "f1": f1_score(y, pred, average="macro")}

    search = TPESearchCV(LogisticRegression(max_iter=300), DIST, n_iter=3, cv=2,
                         scoring=scores, refit="f1", random_state=0).fit(X, Y)  # fmt: skip
    assert np.allclose([r.loss for r in search.study_.records], -search.cv_results_["mean_test_f1"])


def test_lists_that_make_fewer_candidates_than_n_iter_run_each_once(tmp_path: Path) -> None:
    grid = {"C": [0.1, 1.0], "fit_intercept": [True, False]}
    with pytest.warns(UserWarning, match="total space of parameters 4 is smaller than n_iter=10"):
        theirs = RandomizedSearchCV(LogisticRegression(), grid, n_iter=10, cv=2).fit(X, Y)
    with pytest.warns(UserWarning, match="total space of parameters 4 is smaller than n_iter=10"):
        ours = TPESearchCV(LogisticRegression(), grid, n_iter=10, cv=2, random_state=0,
                           study_dir=tmp_path / "s").fit(X, Y)  # fmt: skip
    key = lambda p: sorted(p.items())  # noqa: E731
    assert sorted(map(key, ours.cv_results_["params"])) == sorted(
        map(key, theirs.cv_results_["params"])
    )  # the four candidates, each once, as RandomizedSearchCV samples lists without replacement
