"""scikit-learn drop-in: ``from tpetune.sklearn import TPESearchCV`` where a script had
``from sklearn.model_selection import RandomizedSearchCV``.

Importing this module imports scikit-learn (``pip install scikit-learn``); ``import tpetune``
does not.
"""

from __future__ import annotations

try:
    from tpetune.migrate.sklearn import TPESearchCV
except ImportError as exc:  # scikit-learn is optional: say what to install
    if "sklearn" not in str(exc):
        raise
    from tpetune.errors import MissingDependencyError

    raise MissingDependencyError(
        "tpetune.sklearn needs scikit-learn: pip install scikit-learn"
    ) from None

__all__ = ["TPESearchCV"]
