"""Space files as real modules, the way ``python file.py`` would run them.

A space file is executed as the module ``tpetune_space_<stem>``:

- its folder goes first on ``sys.path`` (as Python puts a script's folder), so the file can
  import a module beside it;
- the module is registered in ``sys.modules`` under its name, so its functions pickle by
  reference: ``multiprocessing.Pool.map(helper, ...)`` inside an objective works (fork start
  method; ``spawn`` children would have to import the file themselves);
- worker processes load the same file under the same name before they receive the
  objective (:func:`worker_env` / :func:`load_from_env`), so the objective travels by
  reference and its functions stay the very objects a pickle lookup finds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

#: Space modules loaded in this process: module name -> file.
LOADED: dict[str, Path] = {}
#: The environment variable carrying :data:`LOADED` to worker processes.
ENV_VAR = "TPETUNE_SPACE_MODULES"


def module_name(path: Path) -> str:
    return f"tpetune_space_{path.stem}"


def load_module(path: Path) -> ModuleType:
    """Execute ``path`` as the module :func:`module_name` (see the module docstring).

    Raises:
        Exception: whatever the file's code raises (the caller words it); on failure the
            module is not left in ``sys.modules``.
    """
    path = Path(path).absolute()
    name = module_name(path)
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py path always has one
        raise ImportError(f"cannot load {path} as a module")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise
    LOADED[name] = path
    return module


def is_space_module(obj: Any) -> bool:
    """True when ``obj`` (a function or an instance) was defined by a loaded space file."""
    name = getattr(obj, "__module__", None) or type(obj).__module__
    return name in LOADED and sys.modules.get(name) is not None


def worker_env(objective: Any) -> dict[str, str]:
    """Environment entries that make a worker load the space file ``objective`` comes from
    (none when it comes from elsewhere: a bundled study's objective needs no space module)."""
    if not is_space_module(objective):
        return {}
    name = getattr(objective, "__module__", None) or type(objective).__module__
    return {ENV_VAR: json.dumps({name: str(LOADED[name])})}


def load_from_env() -> None:
    """In a worker: load the space modules named by :data:`ENV_VAR` (see :func:`worker_env`)."""
    for _name, path in json.loads(os.environ.get(ENV_VAR) or "{}").items():
        load_module(Path(path))
