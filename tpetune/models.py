"""Moved to :mod:`tpetune.study.artifacts` (issue 22); this alias goes in the next release.

Importing it warns once and hands over the new module itself, so attributes, monkeypatching
and ``isinstance`` checks behave exactly as with the new path.
"""

import importlib
import sys
import warnings

warnings.warn(
    "tpetune.models moved to tpetune.study.artifacts; import it from there "
    "(this alias goes in the next release)",
    FutureWarning,
    stacklevel=2,
)
sys.modules[__name__] = importlib.import_module("tpetune.study.artifacts")
