"""Search spaces: load them from files, fingerprint them, and decode hyperopt's raw values.

A space is any hyperopt ``hp.*`` tree. Hyperopt itself describes a point by a flat
``{label: value}`` assignment in which a choice is stored as an *index*; people, files and
objectives in tpetune only ever see *values*. :class:`Space` does that translation both ways:

- :meth:`Space.params` gives the active hyperparameters as ``label -> value`` (what ``show``,
  CSV export and plots display). A choice's value is its option when the option is a constant;
  when the option is a branch (a dict holding further hyperparameters) it is the branch's
  constant part, e.g. ``{"layers": 2, "nodes": hp...}`` shows as ``2``.
- :meth:`Space.evaluate` gives the nested structure the objective receives
  (``hyperopt.space_eval``).
- :meth:`Space.vals_from_params` goes back from values to hyperopt's assignment (warm starts).

Space files are Python files defining ``space`` (and, for ``tpetune run``, ``objective``).
``spaces/NAME.py`` ships inside the package as ``tpetune.spaces`` so a bare name such as
``stock`` resolves from a source checkout and from an installed wheel alike.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from tpetune._io import jsonable
from tpetune.errors import SpaceError
from tpetune.search.domains import collect_params, numeric_value
from tpetune.search.user_modules import load_module

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def resolve_space_file(spec: str | Path) -> Path:
    """Find a space file from a path or a bare name.

    A bare name (``stock``) is looked up as ``./spaces/NAME.py`` first (a user's own spaces),
    then among the spaces bundled with tpetune.

    Raises:
        SpaceError: nothing matches; the message lists the bundled names.
    """
    path = Path(spec)
    if path.is_file():
        return path
    name = str(spec)
    if _NAME_RE.match(name):
        local = Path("spaces") / f"{name}.py"
        if local.is_file():
            return local
        bundled = bundled_spaces()
        if name in bundled:
            return bundled[name]
    if path.is_dir():
        raise SpaceError(
            f"{spec} is a folder, not a space file: give the .py file that defines `space` "
            "(and `objective`, for run)"
        )
    known = ", ".join(sorted(bundled_spaces())) or "none"
    where = f"./spaces/{name}.py, then " if _NAME_RE.match(name) else ""
    raise SpaceError(
        f"space file {spec} not found (a name is looked up as {where}a bundled space): give a "
        f"path to a .py file, put it at ./spaces/NAME.py, or use one of the bundled names "
        f"({known})"
    )


def bundled_spaces() -> dict[str, Path]:
    """Bundled space files by name (``stock`` -> path of ``spaces/stock.py``)."""
    root = importlib.resources.files("tpetune.spaces")
    return {
        Path(entry.name).stem: Path(str(entry))
        for entry in root.iterdir()
        if entry.name.endswith(".py") and not entry.name.startswith("_")
    }


def load_file(spec: str | Path, *, need_objective: bool = False) -> dict[str, Any]:
    """Execute a space file as a module and return its globals (see
    :mod:`tpetune.search.user_modules`: the file may import modules beside it; its functions
    pickle by reference).

    Raises:
        SpaceError: the file is missing, has a syntax error, fails while importing,
            or lacks ``space`` (or ``objective`` when ``need_objective``).
    """
    path = resolve_space_file(spec)
    try:
        # A real module (sys.modules, its folder on sys.path), as `python file.py` runs it.
        namespace = vars(load_module(path))
    except SyntaxError as exc:
        raise SpaceError(
            f"{path}:{exc.lineno}: syntax error: {exc.msg}; fix the file and run again"
        ) from None
    except Exception as exc:  # the user's module code may raise anything
        raise SpaceError(
            f"{path} failed to load: {type(exc).__name__}: {exc}; fix the file and run again"
        ) from None
    except SystemExit as exc:  # a script's sys.exit()/argparse run at import: not our exit
        raise SpaceError(
            f"{path} called sys.exit({exc.code!r}) while loading (tpetune imports it): put "
            'the code that runs it as a script under `if __name__ == "__main__":`'
        ) from None
    if "space" not in namespace:
        raise SpaceError(f"{path} defines no `space`: add `space = {{...hp.* tree...}}`")
    if need_objective and not callable(namespace.get("objective")):
        raise SpaceError(
            f"{path} defines no callable `objective`: add `def objective(params): ... return loss`"
        )
    return namespace


class Space:
    """A hyperopt search space with its fingerprint and value decoding.

    Args:
        tree: any hyperopt ``hp.*`` expression (dict, list, Apply, ...).
        source: where it came from, for messages (a file path or ``"<memory>"``).

    Raises:
        SpaceError: hyperopt rejects the space (e.g. a label used twice).
    """

    def __init__(self, tree: Any, *, source: str = "<memory>", point_bounds: bool = True) -> None:
        from hyperopt import pyll
        from hyperopt.base import Domain
        from hyperopt.exceptions import DuplicateLabel

        self.tree = tree
        self.source = source
        # False: warm-start points may lie outside a range, as hyperopt.fmin evaluates them
        self.point_bounds = point_bounds
        try:
            self.expr = pyll.as_apply(tree)
            # Building the Domain runs hyperopt's own validation (duplicate labels, ...).
            self.domain = Domain(_never_called, self.expr)
        except DuplicateLabel as exc:
            raise SpaceError(
                f"{source}: hyperparameter label {exc} is used twice; give each hp.* a unique label"
            ) from None
        except Exception as exc:
            raise SpaceError(
                f"{source}: hyperopt rejects the space: {type(exc).__name__}: {exc}"
            ) from None
        try:
            self._params = collect_params(self.expr)
        except SpaceError as exc:
            raise SpaceError(f"{source}: {exc}") from None
        if not self._params:
            raise SpaceError(f"{source}: the space has no hp.* hyperparameters to tune")
        self.fingerprint = hashlib.sha256(_canonical(self.expr).encode()).hexdigest()[:16]
        # (node, label) of every hp node, for evaluate(): the graph is walked once, here.
        self._param_nodes = [
            (node, node.arg["label"].eval())
            for node in pyll.toposort(self.expr)
            if node.name == "hyperopt_param"
        ]

    @classmethod
    def from_file(cls, spec: str | Path) -> tuple[Space, dict[str, Any]]:
        """Load ``space`` from a file; also returns the file's globals (for ``objective``)."""
        namespace = load_file(spec)
        return cls(namespace["space"], source=str(resolve_space_file(spec))), namespace

    @property
    def labels(self) -> list[str]:
        """All hyperparameter labels in graph order."""
        return list(self._params)

    def describe(self) -> dict[str, str]:
        """label -> a short description of its distribution, stored to explain mismatches."""
        return {label: p.description for label, p in self._params.items()}

    def is_categorical(self, label: str) -> bool:
        return self._params[label].options is not None

    def is_log(self, label: str) -> bool:
        return "log" in self._params[label].dist

    def params(self, vals: Mapping[str, Any]) -> dict[str, Any]:
        """Active hyperparameters as label -> value, from hyperopt's flat assignment."""
        out: dict[str, Any] = {}
        for label, p in self._params.items():
            if label not in vals:
                continue
            raw = vals[label]
            if p.options is not None:
                out[label] = p.options[int(raw)]
            elif p.integer:
                out[label] = round(float(raw))
            else:
                out[label] = float(raw)
        return out

    def evaluate(self, vals: Mapping[str, Any], *, quiet: bool = False) -> Any:
        """The nested structure an objective receives for this assignment.

        The same as ``hyperopt.space_eval``, which sorts the whole graph (with networkx) on
        every call: here that walk is done once per space (in ``__init__``), which cut
        tpetune's own cost per trial by about a quarter on a cheap objective
        (``bench/overhead.py``: 0.78 to 0.60 ms at 100 trials). ``quiet``: an error is only
        raised, without hyperopt's dump of the graph on stdout (for a check that says why)."""
        from hyperopt import pyll

        memo = {node: vals[label] for node, label in self._param_nodes if label in vals}
        return pyll.rec_eval(self.expr, memo=memo, print_node_on_error=not quiet)

    def vals_from_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Hyperopt's flat assignment for human params (choices by value, not index).

        Raises:
            SpaceError: an unknown label, a value that is not one of a choice's options, a
                numeric value that is not a finite number or lies outside its distribution's
                range, or an active hyperparameter without a value.
        """
        unknown = sorted(set(params) - set(self._params))
        if unknown:
            raise SpaceError(
                f"unknown hyperparameter(s) {', '.join(unknown)}; the space has "
                f"{', '.join(self._params)}"
            )
        vals: dict[str, Any] = {}
        for label, value in params.items():
            p = self._params[label]
            if p.options is None:
                vals[label] = numeric_value(p, value, bounds=self.point_bounds)
                continue
            matches = [i for i, opt in enumerate(p.options) if opt == jsonable(value)]
            if not matches:
                raise SpaceError(f"{label}={value!r} is not one of its options {list(p.options)}")
            vals[label] = matches[0]
        try:
            self.evaluate(vals, quiet=True)
        except Exception:  # hyperopt met an active hp node without a value
            missing = [label for label in self._params if label not in params]
            raise SpaceError(
                f"point {dict(params)} gives no value to a hyperparameter its choices make "
                f"active (not given: {', '.join(missing)}); add it"
            ) from None
        return vals

    def diff(self, stored: Mapping[str, str]) -> str:
        """Say how this space differs from a stored :meth:`describe` (for mismatch errors)."""
        now = self.describe()
        parts = []
        added = [k for k in now if k not in stored]
        removed = [k for k in stored if k not in now]
        changed = [
            f"{k} ({stored[k]} -> {now[k]})" for k in now if k in stored and stored[k] != now[k]
        ]
        if added:
            parts.append("added " + ", ".join(added))
        if removed:
            parts.append("removed " + ", ".join(removed))
        if changed:
            parts.append("changed " + ", ".join(changed))
        return "; ".join(parts) or "the graph changed (same labels and ranges)"


def _never_called(_: Any) -> float:  # pragma: no cover - Domain needs a function
    raise AssertionError("tpetune evaluates objectives itself")


def _canonical(expr: Any) -> str:
    """A text form of the pyll graph that is stable across processes (no object addresses)."""
    from hyperopt import pyll

    order = pyll.toposort(expr)
    index = {id(node): i for i, node in enumerate(order)}
    lines = []
    for i, node in enumerate(order):
        if isinstance(node, pyll.Literal):
            lines.append(f"{i} = {json.dumps(jsonable(node.obj), sort_keys=True)}")
        else:
            pos = [index[id(a)] for a in node.pos_args]
            named = [(k, index[id(v)]) for k, v in node.named_args]
            lines.append(f"{i} = {node.name}{pos}{named}")
    return "\n".join(lines)


def load_space(spec: str | Path) -> Space:
    """Load a space file (a path or a bundled/local name) into a :class:`Space`."""
    return Space.from_file(spec)[0]


ObjectiveFn = Callable[[Any], Any]


def require_labels(
    have: Collection[str],
    needed: Sequence[str],
    *,
    objective: str,
    like: str | None = None,
    subject: str = "params",
) -> None:
    """Refuse a space (or a trial's params) that lacks a label the objective reads.

    ``have`` is what there is (a space's labels, or a trial's params); ``subject`` names it in
    the message ("space spaces/x.py", or "params").

    Raises:
        SpaceError: naming the missing labels and, with ``like``, the space file to follow.
    """
    missing = [k for k in needed if k not in have]
    if missing:
        where = f"the labels of {like}" if like else f"the label(s) {', '.join(missing)}"
        verb = "lack" if subject == "params" else "lacks"
        raise SpaceError(
            f"{subject} {verb} {', '.join(missing)}; the {objective} needs a space with {where}"
        )
