"""Where a study's objective and space come from, when they were built in code.

A study made by :func:`tpetune.fmin` or :func:`tpetune.tune` in a script (no space file)
records, at creation, the objective's module and qualified name, the file defining it (with
its SHA-256) and the script that ran (:func:`origin_of`, meta ``origin``). ``tpetune replay``
finds them again (:func:`find_objective`): it imports the module, or runs the script file as
a module named ``__tpetune_replay__`` (its ``if __name__ == "__main__":`` block skipped),
then, if the objective or the space is still missing, as ``__main__``. Either way the first
call of ``tpetune.fmin``/``tpetune.tune`` the code makes is intercepted (:func:`intercept`):
no search runs; the call's own objective and space are taken when the space is the study's.
Otherwise the objective is looked up by its qualified name and the space among the module's
globals by fingerprint.
"""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tpetune.errors import ConfigError
from tpetune.search.space import Space
from tpetune.study.provenance import file_hash

_HUNTING: contextvars.ContextVar[bool] = contextvars.ContextVar("tpetune_origin", default=False)


class _Intercepted(BaseException):
    """Raised by :func:`intercept` during :func:`find_objective` (BaseException: a script's
    own ``except Exception`` must not swallow it)."""

    def __init__(self, objective: Any, space: Any) -> None:
        super().__init__("intercepted")
        self.objective, self.space = objective, space


def intercept(objective: Any, space: Any) -> None:
    """Called first by ``tpetune.fmin`` and ``tpetune.tune``: while :func:`find_objective`
    runs a study's code, hand it the call's objective and space instead of searching."""
    if _HUNTING.get():
        raise _Intercepted(objective, space)


def origin_of(objective: Any) -> dict[str, Any]:
    """The meta ``origin`` of a study made in code with ``objective``."""
    import inspect

    fn = inspect.unwrap(objective) if callable(objective) else objective
    try:
        source = inspect.getsourcefile(fn) or inspect.getfile(fn)
    except TypeError:  # a builtin or an instance of a class defined in C
        source = None
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    origin: dict[str, Any] = {
        "module": getattr(fn, "__module__", None),
        "qualname": getattr(fn, "__qualname__", None),
        "file": None,
        "sha256": None,
        "script": str(Path(main).resolve()) if main else None,
        "cwd": os.getcwd(),
        "via": getattr(objective, "replay_as", "tune"),
    }
    if source and Path(source).is_file():
        origin.update(file=str(Path(source).resolve()), sha256=file_hash(source))
    return origin


def find_objective(
    origin: dict[str, Any], fingerprint: str, *, force: bool = False, notes: list[str]
) -> tuple[Any, Callable[..., Any]]:
    """The space tree and objective recorded by :func:`origin_of`.

    Raises:
        ConfigError: they cannot be found (one line saying what is missing and what to do),
            or the file changed since the study was made (unless ``force``).
    """

    where = origin.get("file") or origin.get("script")
    name = origin.get("qualname") or "the objective"
    if not where:
        raise ConfigError(
            f"the study recorded no file for its objective {name}: call tpetune's "
            "replay(study_dir, tid, objective=fn, space=space)"
        )
    if not Path(where).is_file():
        raise ConfigError(
            f"{where}, where the study's objective {name} was defined, does not exist now: "
            "restore it, or call replay(study_dir, tid, objective=fn, space=space)"
        )
    if origin.get("sha256") and file_hash(where) != origin["sha256"]:
        if not force:
            raise ConfigError(
                f"{where} changed since the study was made: restore it, or replay with "
                "--force (force=True) to run it anyway"
            )
        notes.append(f"{where} changed since the study was made (forced)")
    found = None
    for run_name in ("__tpetune_replay__", "__main__"):
        found = _search(origin, fingerprint, where, run_name)
        if found[0] is not None and found[1] is not None:
            return found
    missing = "objective" if found is None or found[1] is None else "space"
    raise ConfigError(
        f"the study's {missing} cannot be found again in {where} (the objective was {name}; "
        "the space is looked for among its globals and in its tpetune.fmin/tune call): call "
        "replay(study_dir, tid, objective=fn, space=space)"
    )


def _search(origin: dict[str, Any], fingerprint: str, where: str, run_name: str) -> tuple[Any, Any]:
    """(space, objective) found by running the module or file as ``run_name``."""
    namespace: dict[str, Any] = {}
    caught: _Intercepted | None = None
    with _hunting(origin, where):
        try:
            _load(origin, where, run_name, namespace)
        except _Intercepted as exc:
            caught = exc
        except (Exception, SystemExit):  # the user's code may fail once past the definitions
            pass
    if caught is not None and _fingerprint(caught.space) == fingerprint:
        return getattr(caught.space, "tree", caught.space), caught.objective  # tree of a Space
    objective = _by_qualname(namespace, origin.get("qualname"))
    space = next((v for v in list(namespace.values()) if _fingerprint(v) == fingerprint), None)
    return space, objective


@contextlib.contextmanager
def _hunting(origin: dict[str, Any], where: str) -> Iterator[None]:
    token = _HUNTING.set(True)
    extra = [p for p in (origin.get("cwd"), str(Path(where).parent)) if p and p not in sys.path]
    sys.path[:0] = extra
    try:
        yield
    finally:
        _HUNTING.reset(token)
        for p in extra:
            sys.path.remove(p)


def _load(origin: dict[str, Any], where: str, run_name: str, namespace: dict[str, Any]) -> None:
    """Fill ``namespace`` with the objective's module: imported by name when it can be (an
    installed or already imported module), else its file run as ``run_name``; what it
    defined before its code stopped stays in ``namespace``."""
    module = origin.get("module")
    if module and module != "__main__" and run_name == "__tpetune_replay__":
        try:
            namespace.update(vars(importlib.import_module(module)))
            return
        except (Exception, _Intercepted):  # its top-level code runs a search: run the file
            pass
    namespace.update(__name__=run_name, __file__=where, __builtins__=builtins)
    exec(compile(Path(where).read_text(), where, "exec"), namespace)


def _by_qualname(namespace: dict[str, Any], qualname: str | None) -> Any:
    if not qualname or "<" in qualname:  # a lambda or a function defined inside another
        return None
    obj: Any = namespace.get(qualname.split(".")[0])
    for part in qualname.split(".")[1:]:
        obj = getattr(obj, part, None)
    return obj if callable(obj) else None


def _fingerprint(tree: Any) -> str | None:
    from hyperopt.pyll import Apply

    if isinstance(getattr(tree, "fingerprint", None), str):  # a tpetune Space
        return str(tree.fingerprint)
    if not isinstance(tree, dict | list | tuple | Apply):
        return None

    try:
        return Space(tree).fingerprint
    except Exception:  # not a space: any other global
        return None
