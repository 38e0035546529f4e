"""Hyper-parameter search spaces read from YAML.

A search space file maps each parameter name to either a fixed value or a distribution::

    lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    n_filters: {type: int, low: 8, high: 32, step: 8}
    graph: {type: categorical, choices: [G0, G1, G2]}
    epochs: 5            # fixed: not searched, but part of every trial's configuration

Parameter names are the keyword arguments of the code that runs a trial (for HiSTN:
:func:`physioemo.evaluation.protocols.run_protocol`), so a sampled configuration is passed
on without a translation layer and written back as a config file that ``physioemo evaluate
--config`` accepts unchanged.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path

from ..exceptions import DataError, ParameterError

#: Distribution types and the keys each accepts (``type`` excluded).
DISTRIBUTION_KEYS = {
    "float": {"low", "high", "log", "step"},
    "int": {"low", "high", "log", "step"},
    "categorical": {"choices"},
}

_SCALAR = (str, bool, int, float, type(None))

#: The valid values of run_protocol's searchable keyword arguments (what `physioemo
#: evaluate` and HiSTN accept): a search space reaching outside them is refused before any
#: trial runs. Bounds use :func:`physioemo.utils._checks.check_number`'s keywords.
VALID_RANGES = {
    "epochs": {"low": 1, "integer": True},
    "finetune_epochs": {"low": 1, "integer": True},
    "steps_per_epoch": {"low": 1, "integer": True},
    "batch_size": {"low": 1, "integer": True},
    "lr": {"low": 0.0, "low_inclusive": False},
    "dropout": {"low": 0.0, "high": 1.0, "high_inclusive": False},
    "sigma": {"low": 0.0, "low_inclusive": False},
    "smoothing": {"choices": ("gaussian", "onehot", "uniform")},
    "graph": {"choices": ("G0", "G1", "G2")},
}


def _is_number(value, *, integer=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    if integer:
        return isinstance(value, numbers.Integral)
    return math.isfinite(float(value))


class Param:
    """One searched parameter.

    Parameters
    ----------
    name : str
        The keyword argument it sets.
    type : {"float", "int", "categorical"}
        The distribution type.
    low, high : float | int | None
        Inclusive bounds (``float``/``int``).
    log : bool
        Sample on a log scale (``float``/``int``; ``low`` must be positive).
    step : float | int | None
        Discretisation step (``float``/``int``; not combined with ``log``).
    choices : list | None
        The values of a ``categorical`` parameter.
    """

    def __init__(self, name, type, *, low=None, high=None, log=False, step=None,
                 choices=None):
        self.name = name
        self.type = type
        self.low = low
        self.high = high
        self.log = log
        self.step = step
        self.choices = choices

    def __repr__(self):
        if self.type == "categorical":
            return f"Param({self.name!r}, categorical, choices={self.choices!r})"
        extra = ", log" if self.log else (f", step={self.step}" if self.step else "")
        return f"Param({self.name!r}, {self.type}, [{self.low}, {self.high}]{extra})"

    def suggest(self, trial):
        """Sample this parameter from an Optuna trial and return the value."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high),
                                     step=int(self.step or 1), log=bool(self.log))
        return trial.suggest_float(self.name, float(self.low), float(self.high),
                                   step=None if self.step is None else float(self.step),
                                   log=bool(self.log))

    def grid(self):
        """Return every value of a discrete parameter (for the grid sampler)."""
        if self.type == "categorical":
            return list(self.choices)
        if self.log or (self.type == "float" and self.step is None):
            raise ParameterError(
                f"search-space parameter {self.name!r} ({self.type}, "
                f"{'log scale' if self.log else 'no step'}) has no finite grid; the grid "
                f"sampler needs categorical parameters or int/float ranges with a step; give "
                f"{self.name!r} a step (and no log) or use --sampler tpe or random.")
        step = self.step or 1
        n = int(math.floor((self.high - self.low) / step + 1e-9)) + 1
        values = [self.low + i * step for i in range(n)]
        if self.type == "int":
            return [int(v) for v in values]
        return [round(float(v), 12) for v in values]


class SearchSpace:
    """A set of searched parameters plus fixed values.

    Parameters
    ----------
    params : list of Param
        The searched parameters.
    fixed : dict | None
        Parameter values common to every trial.
    source : str | None
        Where the space came from (a file name), used in messages.
    """

    def __init__(self, params, fixed=None, source=None):
        self.params = list(params)
        self.fixed = dict(fixed or {})
        self.source = source

    def __repr__(self):
        return (f"SearchSpace({len(self.params)} searched: "
                f"{[p.name for p in self.params]}, fixed: {sorted(self.fixed)})")

    @property
    def names(self):
        """All parameter names, searched and fixed."""
        return [p.name for p in self.params] + list(self.fixed)

    def suggest(self, trial):
        """Sample every searched parameter and return the full configuration.

        Parameters
        ----------
        trial : optuna.trial.Trial
            The trial that samples.

        Returns
        -------
        config : dict
            Fixed values, then the sampled ones (keyword argument -> value).
        """
        config = dict(self.fixed)
        for param in self.params:
            config[param.name] = param.suggest(trial)
        return config

    def grid(self):
        """Return ``{name: [values]}`` for :class:`optuna.samplers.GridSampler`."""
        return {p.name: p.grid() for p in self.params}

    def check_ranges(self, ranges):
        """Raise :class:`ParameterError` if a parameter can take a value outside ``ranges``.

        Parameters
        ----------
        ranges : dict
            ``name -> {"choices": [...]}`` or ``check_number`` keywords (``low``, ``high``,
            ``low_inclusive``, ``high_inclusive``, ``integer``); names not in it are not
            checked.
        """
        from ..utils._checks import check_number, check_option

        where = f"search space {self.source!r}" if self.source else "search space"
        values = {name: [value] for name, value in self.fixed.items()}
        for p in self.params:
            if p.type == "categorical":
                values[p.name] = list(p.choices)
            else:  # a range is valid if both ends are (and an int range for an integer)
                values[p.name] = [p.low, p.high] if p.type == "int" else [
                    float(p.low), float(p.high)]
        for name, vals in values.items():
            rule = ranges.get(name)
            if rule is None:
                continue
            for value in vals:
                try:
                    if "choices" in rule:
                        check_option(name, value, rule["choices"])
                    else:
                        check_number(name, value, **rule)
                except ParameterError as err:
                    raise ParameterError(
                        f"{where}: parameter {name!r} can take a value that no trial accepts "
                        f"({str(err).rstrip('.')}); narrow its range or choices before "
                        "starting the search.") from None

    def check_allowed(self, allowed, *, what="run_protocol"):
        """Raise :class:`ParameterError` for names not in ``allowed``.

        Parameters
        ----------
        allowed : iterable of str
            The accepted keyword arguments.
        what : str
            What accepts them, used in the message.
        """
        allowed = sorted(set(allowed))
        unknown = [n for n in self.names if n not in allowed]
        if unknown:
            where = f"search space {self.source!r}" if self.source else "search space"
            raise ParameterError(
                f"{where} has unknown parameter(s) {unknown}; parameters must be keyword "
                f"arguments of {what}, which are {allowed}; rename or remove them.")


def _param_from_spec(name, spec, where):
    prefix = f"{where}: parameter {name!r}"
    kind = spec.get("type")
    if kind not in DISTRIBUTION_KEYS:
        raise ParameterError(
            f"{prefix} has type={kind!r}; type must be one of {sorted(DISTRIBUTION_KEYS)}; "
            f"write e.g. `{name}: {{type: float, low: 0.0, high: 1.0}}`.")
    unknown = sorted(set(spec) - DISTRIBUTION_KEYS[kind] - {"type"})
    if unknown:
        raise ParameterError(
            f"{prefix} ({kind}) has unknown key(s) {unknown}; a {kind} parameter accepts "
            f"{sorted(DISTRIBUTION_KEYS[kind] | {'type'})}; remove or rename them.")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ParameterError(
                f"{prefix} needs a non-empty list of choices, got {choices!r}; write e.g. "
                f"`choices: [a, b]`.")
        bad = [c for c in choices if not isinstance(c, _SCALAR)]
        if bad:
            raise ParameterError(
                f"{prefix} has choices {bad!r}; choices must be strings, numbers, booleans "
                f"or null (what Optuna can store); use scalar choices.")
        if len({(type(c), c) for c in choices}) != len(choices):
            raise ParameterError(
                f"{prefix} has repeated choices {choices!r}; each choice must appear once; "
                f"remove the duplicates.")
        return Param(name, kind, choices=choices)
    integer = kind == "int"
    low, high = spec.get("low"), spec.get("high")
    for key, value in (("low", low), ("high", high)):
        if not _is_number(value, integer=integer):
            need = "an integer" if integer else "a finite number"
            raise ParameterError(
                f"{prefix} ({kind}) has {key}={value!r}; {key} must be {need}; set {key}.")
    if not low < high:
        raise ParameterError(
            f"{prefix} has an empty range: low={low!r} must be below high={high!r}; swap or "
            f"widen the bounds (for a constant, write `{name}: {low!r}` as a fixed value).")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ParameterError(f"{prefix} has log={log!r}; log must be true or false; "
                             f"write `log: true`.")
    if log and low <= 0:
        raise ParameterError(
            f"{prefix} is on a log scale so low must be positive, got low={low!r}; raise low "
            f"above 0 or drop `log: true`.")
    step = spec.get("step")
    if step is not None:
        if log:
            raise ParameterError(
                f"{prefix} has both log=true and step={step!r}; Optuna accepts one or the "
                f"other; remove one of them.")
        if not _is_number(step, integer=integer) or step <= 0 or step > high - low:
            raise ParameterError(
                f"{prefix} has step={step!r}; step must be a positive "
                f"{'integer' if integer else 'number'} no larger than high - low "
                f"({high - low!r}); fix step.")
    return Param(name, kind, low=low, high=high, log=log, step=step)


def parse_search_space(spec, *, allowed=None, source=None, what="run_protocol",
                       ranges=None):
    """Build a :class:`SearchSpace` from a mapping (the parsed YAML).

    Parameters
    ----------
    spec : dict
        ``name -> {type: ..., ...}`` for searched parameters or ``name -> value`` for fixed
        ones.
    allowed : iterable of str | None
        Accepted parameter names; others raise :class:`ParameterError`.
    source : str | None
        Where the mapping came from, used in messages.
    what : str
        What accepts the parameters, used in messages.
    ranges : dict | None
        Valid values of each parameter (e.g. :data:`VALID_RANGES`), checked for every value
        a searched parameter can take and for the fixed ones.

    Returns
    -------
    space : SearchSpace
        The validated search space.
    """
    where = f"search space {source!r}" if source else "search space"
    if not isinstance(spec, dict) or not spec:
        raise ParameterError(
            f"{where} must be a non-empty mapping of parameter: distribution, got "
            f"{type(spec).__name__} {spec!r}; see configs/search_space_histn.yaml.")
    params, fixed = [], {}
    for name, value in spec.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ParameterError(f"{where} has parameter name {name!r}; names must be Python "
                                 f"identifiers (keyword arguments); rename it.")
        if isinstance(value, dict):
            params.append(_param_from_spec(name, value, where))
        elif isinstance(value, _SCALAR) or (isinstance(value, list)
                                            and all(isinstance(v, _SCALAR) for v in value)):
            fixed[name] = value
        else:
            raise ParameterError(
                f"{where}: parameter {name!r} is {value!r}; it must be a distribution mapping "
                f"or a fixed scalar/list value; write e.g. `{name}: {{type: float, low: 0, "
                f"high: 1}}`.")
    space = SearchSpace(params, fixed, source=source)
    if not space.params:
        raise ParameterError(f"{where} searches no parameter (all {sorted(fixed)} are fixed); "
                             f"give at least one parameter a distribution.")
    if allowed is not None:
        space.check_allowed(allowed, what=what)
    if ranges is not None:
        space.check_ranges(ranges)
    return space


def load_search_space(path, *, allowed=None, what="run_protocol", ranges=None):
    """Read and validate a YAML search-space file.

    Parameters
    ----------
    path : str | Path
        The YAML file.
    allowed : iterable of str | None
        Accepted parameter names.
    what : str
        What accepts the parameters, used in messages.
    ranges : dict | None
        Valid values of each parameter (see :func:`parse_search_space`).

    Returns
    -------
    space : SearchSpace
        The validated search space.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DataError(f"search-space file {str(path)!r} does not exist; pass a YAML file "
                        f"such as configs/search_space_histn.yaml.")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise DataError(f"search-space file {str(path)!r} is not valid YAML: {err}; fix the "
                        f"syntax.") from None
    return parse_search_space(spec, allowed=allowed, source=str(path), what=what,
                              ranges=ranges)
