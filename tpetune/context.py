"""Moved to :mod:`tpetune.trial.context` (issue 22); this alias goes in the next release.

Importing it warns once and hands over the new module itself, so attributes, monkeypatching
and ``isinstance`` checks behave exactly as with the new path.
"""

import importlib
import sys
import warnings

warnings.warn(
    "tpetune.context moved to tpetune.trial.context; import it from there "
    "(this alias goes in the next release)",
    FutureWarning,
    stacklevel=2,
)
sys.modules[__name__] = importlib.import_module("tpetune.trial.context")
