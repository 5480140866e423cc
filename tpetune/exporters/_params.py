"""Hyperparameter domains for other tools, read from a study's stored space description.

A study stores ``meta["space"]``: label -> a short text such as ``uniform(0, 1)``,
``quniform(16, 128, 16)`` or ``choice[1, {"act": "relu", "layers": 2}]``
(:meth:`tpetune.search.space.Space.describe`). Exporters turn that text into a :class:`Domain`, the
same for a label in every trial, without running the space file. How hyperopt's
distributions map (Optuna names; TensorBoard's intervals follow the same bounds):

=====================  ===========================================================
hyperopt               domain
=====================  ===========================================================
choice / pchoice       categorical of the option *values* (a branch by its constant
                       part; dicts and lists as sorted JSON text; repeats get ``#i``)
uniform(a, b)          float [a, b]
loguniform(a, b)       float [e^a, e^b], log
quniform(a, b, q)      [round(a/q)·q, round(b/q)·q] with step q; int when q is whole
randint(u) / (a, u)    int [0, u-1] / [a, u-1]
qloguniform(a, b, q)   *fallback*: log without step (Optuna refuses log with step);
                       linear with step q when its smallest value rounds to 0
normal(mu, s)          *fallback*: float [mu-10s, mu+10s] (unbounded in hyperopt)
lognormal(mu, s)       *fallback*: float [e^(mu-10s), e^(mu+10s)], log
qnormal(mu, s, q)      *fallback*: as normal, on the step-q grid
qlognormal(mu, s, q)   *fallback*: [0, round(e^(mu+10s)/q)·q] with step q
anything else          none: the value goes to the trial's attributes only
=====================  ===========================================================

A value outside its domain (a fallback's 10-sigma range) is not dropped: exporters keep it
as an attribute of the trial, as they do for labels without a domain.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tpetune._io import finite_float
from tpetune.study.store import TrialRecord

#: How far a fallback range reaches for hyperopt's unbounded normals, in sigmas.
SIGMAS = 10.0
_CALL_RE = re.compile(r"^(\w+)\((.*)\)$")
_ARG_NAMES = {
    "uniform": ("low", "high"),
    "loguniform": ("low", "high"),
    "quniform": ("low", "high", "q"),
    "qloguniform": ("low", "high", "q"),
    "normal": ("mu", "sigma"),
    "lognormal": ("mu", "sigma"),
    "qnormal": ("mu", "sigma", "q"),
    "qlognormal": ("mu", "sigma", "q"),
}

Scalar = None | bool | int | float | str


@dataclass(frozen=True)
class Domain:
    """Where one hyperparameter's values lie, in terms other tools accept.

    ``kind`` is ``"float"``, ``"int"`` or ``"categorical"``; ``choices`` holds a categorical's
    option values as scalars (index = hyperopt's choice index); ``note`` names a fallback.
    """

    kind: Literal["float", "int", "categorical"]
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    choices: tuple[Scalar, ...] = ()
    note: str = ""

    def value(self, record: TrialRecord, label: str) -> Scalar:
        """This trial's value of ``label`` as the domain holds it (a choice by its value).

        Raises:
            ValueError: the value does not lie in the domain.
        """
        if self.kind == "categorical":
            index = int(record.vals[label])
            if not 0 <= index < len(self.choices):
                raise ValueError(f"{label}: choice index {index} outside {len(self.choices)}")
            return self.choices[index]
        raw = record.params[label]
        if not isinstance(raw, int | float) or isinstance(raw, bool) or math.isnan(raw):
            raise ValueError(f"{label}={raw!r} is no number")
        value: int | float = round(raw) if self.kind == "int" else float(raw)
        if not self.low <= value <= self.high:
            raise ValueError(f"{label}={value} outside [{self.low}, {self.high}]")
        if self.step is not None:
            k = (value - self.low) / self.step
            if abs(k - round(k)) > 1e-8:  # Optuna's own test of a grid value
                raise ValueError(f"{label}={value} off its step {self.step}")
        return value


def scalar(value: Any) -> Scalar:
    """A choice value as a scalar: dicts and lists become sorted JSON text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, sort_keys=True)


def domains(space: Mapping[str, str] | None) -> dict[str, Domain]:
    """Domains by label for a stored space description; labels that do not map are left out."""
    out: dict[str, Domain] = {}
    for label, description in (space or {}).items():
        domain = parse(description)
        if domain is not None:
            out[label] = domain
    return out


def parse(description: str) -> Domain | None:
    """The :class:`Domain` of one stored description, ``None`` when it does not map."""
    if description.startswith("choice["):
        try:
            options = json.loads(description[len("choice") :])
        except ValueError:
            return None
        return Domain("categorical", choices=_unique([scalar(o) for o in options]))
    match = _CALL_RE.match(description)
    if match is None:
        return None
    name, args = match.group(1), _numbers(match.group(2))
    if args is None:
        return None
    if name == "randint":
        low, upper = (0.0, args.get("a0", math.nan)) if len(args) == 1 else _two(args)
        return (
            Domain("int", low=low, high=upper - 1)
            if None not in (finite_float(low), finite_float(upper))
            else None
        )
    names = _ARG_NAMES.get(name)
    if names is None or len(args) != len(names):
        return None
    values = [args.get(f"a{i}", args.get(n, math.nan)) for i, n in enumerate(names)]
    if any(finite_float(v) is None for v in values):
        return None
    return _numeric(name, *values)


def _numeric(name: str, a: float, b: float, q: float = 0.0) -> Domain | None:
    whole = q > 0 and float(q).is_integer()
    kind: Literal["float", "int"] = "int" if whole else "float"
    if name == "uniform":
        return Domain("float", low=a, high=b)
    if name == "loguniform":
        return Domain("float", low=_down(math.exp(a)), high=_up(math.exp(b)), log=True)
    if name == "quniform":
        return _grid(kind, round(a / q) * q, round(b / q) * q, q)
    if name == "qloguniform":
        low, high = round(math.exp(a) / q) * q, round(math.exp(b) / q) * q
        if low > 0:
            note = "qloguniform: log scale without its step (Optuna refuses log with step)"
            return Domain(kind, low=low, high=high, log=True, note=note)
        return _grid(kind, low, high, q, "qloguniform: linear with step (its low end is 0)")
    mu, sigma = a, b
    lo, hi = mu - SIGMAS * sigma, mu + SIGMAS * sigma
    if name == "normal":
        return Domain("float", low=lo, high=hi, note=f"normal: ±{SIGMAS:g} sigma")
    if name == "lognormal":
        note = f"lognormal: ±{SIGMAS:g} sigma, log"
        return Domain("float", low=math.exp(lo), high=math.exp(hi), log=True, note=note)
    if name == "qnormal":
        return _grid(kind, round(lo / q) * q, round(hi / q) * q, q, f"qnormal: ±{SIGMAS:g} sigma")
    if name == "qlognormal":
        return _grid(kind, 0.0, round(math.exp(hi) / q) * q, q, f"qlognormal: to +{SIGMAS:g}s")
    return None


def _grid(
    kind: Literal["float", "int"], low: float, high: float, q: float, note: str = ""
) -> Domain:
    if kind == "int":
        return Domain("int", low=round(low), high=round(high), step=round(q), note=note)
    return Domain("float", low=low, high=high, step=q, note=note)


def _numbers(text: str) -> dict[str, float] | None:
    """``"0, 1, q=2.0"`` -> ``{"a0": 0, "a1": 1, "q": 2}``; ``None`` if any part is no number."""
    out: dict[str, float] = {}
    for i, part in enumerate(p.strip() for p in text.split(",") if p.strip()):
        key, _, raw = part.rpartition("=")
        try:
            out[key or f"a{i}"] = float(raw)
        except ValueError:
            return None
    return out


def _two(args: Mapping[str, float]) -> tuple[float, float]:
    return args.get("a0", math.nan), args.get("a1", math.nan)


def _down(x: float) -> float:
    return math.nextafter(x, -math.inf)  # exp() here and in hyperopt may differ in the last bit


def _up(x: float) -> float:
    return math.nextafter(x, math.inf)


def _unique(values: list[Scalar]) -> tuple[Scalar, ...]:
    """Options that compare equal (two branches with one constant part) get ``#i`` added."""
    out: list[Scalar] = []
    for i, v in enumerate(values):
        out.append(f"{v} #{i}" if v in out else v)
    return tuple(out)
