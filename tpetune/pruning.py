"""Moved to :mod:`tpetune.pruners.keras` (issue 22); this alias goes in the next release.

Importing it warns once and hands over the new module itself, so attributes, monkeypatching
and ``isinstance`` checks behave exactly as with the new path.
"""

import importlib
import sys
import warnings

warnings.warn(
    "tpetune.pruning moved to tpetune.pruners.keras; import it from there "
    "(this alias goes in the next release)",
    FutureWarning,
    stacklevel=2,
)
sys.modules[__name__] = importlib.import_module("tpetune.pruners.keras")
