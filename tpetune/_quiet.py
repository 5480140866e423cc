"""Keep TensorFlow's start-up and retracing noise off the terminal (``--verbose`` keeps it).

TensorFlow prints from C++ (oneDNN and CPU-instruction notices, the absl ``InitializeLog``
line) as soon as it is imported, so the switches are environment variables that must be set
before the first ``import tensorflow`` of a process: :func:`quiet_tensorflow` is called by the
CLI first thing, by every worker process before it loads the objective, and on Spark executors
before a trial runs. Variables the user set are left alone. Python-side warnings (``tf.function``
retracing) go through the ``tensorflow`` logger, raised to ERROR here.
"""

from __future__ import annotations

import logging
import os

#: What quiet means, as environment variables (user-set values win).
QUIET_ENV = {
    # C++ INFO and WARNING: the CPU-instruction notice, absl's InitializeLog line.
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "GRPC_VERBOSITY": "ERROR",
    "GLOG_minloglevel": "2",
}
#: Set whether verbose or not (user-set values win): TensorFlow prints "oneDNN custom
#: operations are on" at any log level, and oneDNN's reordered float sums make a trial's
#: loss depend on the CPU; off, the numbers (hence TPE's proposals) match across machines.
NUMERICS_ENV = {"TF_ENABLE_ONEDNN_OPTS": "0"}
#: The marker a worker or executor reads to keep TensorFlow's logs.
VERBOSE_VAR = "TPETUNE_VERBOSE"


def quiet_env(verbose: bool) -> dict[str, str]:
    """The variables a process on another machine needs (Spark executors): the defaults
    above, with any value set in this process's environment instead."""
    wanted = {**NUMERICS_ENV, **({VERBOSE_VAR: "1"} if verbose else QUIET_ENV)}
    return {k: os.environ.get(k, v) for k, v in wanted.items()}


def quiet_tensorflow(verbose: bool = False) -> None:
    """Silence TensorFlow in this process and the processes it starts, unless ``verbose``.

    Safe to call more than once; effective for C++ logs only before TensorFlow is imported.
    """
    for key, value in NUMERICS_ENV.items():
        os.environ.setdefault(key, value)
    if verbose:
        os.environ[VERBOSE_VAR] = "1"
        return
    os.environ.pop(VERBOSE_VAR, None)
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:  # absl's Python logger (TensorFlow and Keras log through it)
        from absl import logging as absl_logging
    except ImportError:
        return
    absl_logging.set_verbosity(absl_logging.ERROR)
