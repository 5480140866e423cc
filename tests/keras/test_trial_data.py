"""KerasTrial with tf.data and Python-generator inputs: folds, pruning, resume.

The seed framework's pipeline: an endless Python generator of batches turned into a
``tf.data.Dataset`` (``from_generator``) and fitted with ``steps_per_epoch``; and a plain
``tf.data`` pipeline from arrays. Both are built inside ``fit_args`` (datasets do not
pickle, and a fresh one per fit restarts the stream with the trial's seed)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from hyperopt import hp  # noqa: E402

from tpetune import MedianPruner, Search, TrialState, load_study  # noqa: E402
from tpetune.engine.tuning import tune  # noqa: E402
from tpetune.keras.trial import KerasTrial  # noqa: E402
from tpetune.trial.context import TrialContext, trial_scope  # noqa: E402

pytestmark = pytest.mark.keras

RNG = np.random.default_rng(0)
X = RNG.normal(size=(96, 3)).astype("float32")
Y = (X @ np.array([1.0, -2.0, 0.5])).astype("float32")
SPEC = (tf.TensorSpec((None, 3), tf.float32), tf.TensorSpec((None,), tf.float32))


def endless_batches(x: np.ndarray, y: np.ndarray, batch: int, seed: int) -> Iterator[Any]:
    """The seed framework's generator: random batches, forever."""
    rng = np.random.default_rng(seed)
    while True:
        rows = rng.integers(0, len(x), size=batch)
        yield x[rows], y[rows]


class StreamTrial(KerasTrial):
    """A linear regressor fed by ``tf.data`` (``mode="dataset"``) or by an endless
    generator through ``Dataset.from_generator`` (``mode="generator"``)."""

    backup_every_s = 0.0  # back up after every epoch: the resume test crashes mid-fold
    backup_cost_factor = 0.0

    def __init__(self, mode: str, n_folds: int = 1, epochs: int = 3, **kw: Any) -> None:
        super().__init__(patience=10, **kw)
        self.mode, self.n_folds, self.epochs = mode, n_folds, epochs
        self.built = 0
        self.epochs_run = 0

    def fold_data(self, params: Mapping[str, Any]) -> Sequence[np.ndarray]:
        size = len(X) // self.n_folds
        return [np.arange(i * size, (i + 1) * size) for i in range(self.n_folds)]

    def build(self, params: Mapping[str, Any], fold: Any) -> Any:
        self.built += 1
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(params["lr"]), loss="mse")
        return model

    def fit_args(self, params: Mapping[str, Any], fold: np.ndarray) -> dict[str, Any]:
        train = np.setdiff1d(np.arange(len(X)), fold) if self.n_folds > 1 else np.arange(len(X))
        x, y = X[train], Y[train]
        val = tf.data.Dataset.from_tensor_slices((X[fold], Y[fold])).batch(16)
        if self.mode == "dataset":
            data = tf.data.Dataset.from_tensor_slices((x, y))
            data = data.shuffle(len(x), seed=self.trial_seed()).batch(16)
            return {"x": data, "validation_data": val, "epochs": self.epochs}
        seed = self.trial_seed()
        data = tf.data.Dataset.from_generator(
            lambda: endless_batches(x, y, 16, seed), output_signature=SPEC
        ).prefetch(2)
        return {"x": data, "steps_per_epoch": 4, "validation_data": val, "epochs": self.epochs}

    def fit_callbacks(self, params: Mapping[str, Any], fold: Any) -> list[Any]:
        trial = self

        class Count(keras.callbacks.Callback):  # type: ignore[misc]
            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                trial.epochs_run += 1

        return [Count()]


@pytest.mark.parametrize("mode", ["dataset", "generator"])
def test_dataset_and_generator_inputs_train_every_fold(mode: str) -> None:
    obj = StreamTrial(mode, n_folds=2, epochs=3)
    result = obj({"lr": 0.05})
    assert result["metrics"]["folds_run"] == 2 and obj.built == 2
    assert len(result["curves"]["val_loss"]) == 3
    assert result["loss"] == pytest.approx(np.mean(result["metrics"]["fold_loss"]))
    assert result["curves"]["val_loss"][-1] < result["curves"]["val_loss"][0]  # it learns


def test_a_generator_study_resumes_with_the_same_trials(tmp_path: Path) -> None:
    space = {"lr": hp.loguniform("lr", -5, -1)}
    first = tune(StreamTrial("generator"), space, study_dir=tmp_path, max_evals=2, progress=False)
    again = tune(StreamTrial("generator"), space, study_dir=tmp_path, max_evals=3, progress=False)
    assert [r.state for r in again.records] == [TrialState.OK] * 3
    assert again.records[:2] == first.records  # not trained again
    assert all(len(r.curves["val_loss"]) == 3 for r in again.records)


def test_a_crashed_generator_fold_resumes_from_its_backup(tmp_path: Path) -> None:
    obj = StreamTrial("generator", n_folds=2, epochs=4)

    class CrashInFold1(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if obj.built == 2 and epoch == 1:
                raise KeyboardInterrupt("the process dies in fold 1, epoch 2")

    obj.callbacks = [CrashInFold1]
    ctx = TrialContext(tid=0, seed=7, study_dir=tmp_path)
    with trial_scope(ctx), pytest.raises(KeyboardInterrupt):
        obj({"lr": 0.05})
    assert obj.epochs_run == 4 + 2  # fold 0 whole, fold 1 two epochs (the second backed up)
    obj.callbacks, obj.epochs_run = [], 0
    with trial_scope(TrialContext(tid=0, seed=7, study_dir=tmp_path)):
        result = obj({"lr": 0.05})
    assert obj.built == 3  # fold 0 from its file; fold 1 rebuilt once
    assert obj.epochs_run == 2  # ... and continued from its backup after epoch 2
    assert result["metrics"]["folds_run"] == 2
    assert len(result["curves"]["val_loss"]) == 4  # the logged epochs before the crash kept


def test_a_hopeless_generator_trial_is_pruned_on_its_first_fold(tmp_path: Path) -> None:
    # Good learning rates first (none pruned), then a hopeless one, pruned after the warm-up.
    points = [{"lr": 0.05}, {"lr": 0.1}, {"lr": 0.2}, {"lr": 1e-7}]
    study = tune(
        StreamTrial("generator", n_folds=2, epochs=5),
        {"lr": hp.loguniform("lr", -17, -1)},
        study_dir=tmp_path,
        max_evals=4,
        search=Search(points=points),
        pruner=MedianPruner(warmup_trials=2, warmup_steps=2),
        progress=False,
    )
    last = study.records[-1]
    assert last.state is TrialState.PRUNED
    assert last.metrics["folds_run"] == 1  # the remaining fold was not trained
    assert len(last.curves["val_loss"]) == last.metrics["pruned_at_epoch"] < 5
    assert [r.state for r in load_study(tmp_path).records[:3]] == [TrialState.OK] * 3


def test_trial_seed_answers_inside_tf_datas_generator_thread() -> None:
    seen: list[int] = []

    class LazySeed(StreamTrial):
        def fit_args(self, params: Mapping[str, Any], fold: np.ndarray) -> dict[str, Any]:
            def batches() -> Iterator[Any]:
                seen.append(self.trial_seed())  # runs in a tf.data thread, not this one
                yield from endless_batches(X, Y, 16, seen[-1])

            data = tf.data.Dataset.from_generator(batches, output_signature=SPEC)
            return {"x": data, "steps_per_epoch": 2, "epochs": 1,
                    "validation_data": (X[fold], Y[fold])}  # fmt: skip

    with trial_scope(TrialContext(tid=3, seed=1234, study_dir=None)):
        LazySeed("generator")({"lr": 0.05})
    # TensorFlow starts the generator once; on JAX the trainer first peeks at one batch
    # through an iterator of its own, which starts it once more: each start gets the seed.
    assert seen and set(seen) == {1234}
