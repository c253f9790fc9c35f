"""Study files: an experiment written in TOML, checked against its method's config fields before any run.

    method = "airbench94"                 # a built-in (--list-methods), package.module:NAME or file.py:NAME
    description = "random vs alternating flip"
    primary = "random_flip"               # optional: the comparison the study is about

    [base]                                # overrides of the method's config, for every cell
    epochs = 8.0

    [variants.random_flip]                # named variants, each compared with the base config ...
    flip = "random"

    [variants.mine]                       # ... a variant may train another method: the base's fields
    method = "my_methods.py:METHOD"       # it has (sizes) apply, then its own overrides

    # ... or a grid instead of variants: the product of the listed values
    # [grid]
    # lr = [9.0, 11.5, 14.0]

    [adaptive]                            # optional: decide comparisons with as few seeds as possible
    precision = 0.05                      # points: "equal" when the whole sequence lies inside [-P, P]
    max_seeds = 400

Fields are the method's config dataclass fields (``--list-fields METHOD``). Every mistake raises :class:`StudyFileError` with one line naming the file, the key and what was
expected. ``--set FIELD=VALUE`` strings go through the same checks (:func:`parse_set`).
"""

from __future__ import annotations

import difflib
import itertools
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import tomllib

from airbench_core.config import FLIP_MODES, TrainConfig, out_of_range
from harness.spec.claim import ClaimSpec, parse_claim
from harness.spec.defaults import MAX_CELLS
from harness.spec.errors import UserError
from harness.spec.grid import Cell
from harness.spec.methods import MethodError, builtin_names, find_method
from harness.stats.sequential import Rule

BASELINE = "baseline"
TOP_KEYS = ("method", "description", "primary", "base", "variants", "grid", "adaptive", "claim")
ADAPTIVE_KEYS = ("precision", "max_seeds", "min_seeds")
CHOICES: dict[str, tuple[str, ...]] = {"flip": FLIP_MODES}  # string fields with a fixed set of values


class StudyFileError(UserError):
    """A mistake in a study file or a --set value: one line, file (or flag), key, what was expected."""


class _Mismatch(Exception):
    """A value of the wrong type; the caller knows the key and adds it to the message."""


# --------------------------------------------------------------------------- field types


@dataclass(frozen=True)
class Kind:
    """What one TrainConfig field accepts, in words (one value, and a list of them) and as a check."""

    one: str
    many: str
    convert: Callable[[Any], Any]


def _whole(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Mismatch
    return v


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Mismatch
    return float(v)


def _flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Mismatch
    return v


def _text(choices: tuple[str, ...] | None) -> Callable[[Any], str]:
    def convert(v: Any) -> str:
        if not isinstance(v, str) or (choices and v not in choices):
            raise _Mismatch
        return v

    return convert


def _triple(v: Any) -> tuple[int, int, int]:
    if not isinstance(v, (list, tuple)) or len(v) != 3:
        raise _Mismatch
    a, b, c = (_whole(x) for x in v)
    return a, b, c


def _optional_number(v: Any) -> float | None:
    if v is None or (isinstance(v, str) and v.lower() == "none"):
        return None
    return _number(v)


def _optional_whole(v: Any) -> int | None:
    if v is None or (isinstance(v, str) and v.lower() == "none"):
        return None
    return _whole(v)


def _kind(name: str, annotation: Any) -> Kind:
    if annotation is bool:
        return Kind("true or false", "true/false values", _flag)
    if annotation is int:
        return Kind("a whole number", "whole numbers", _whole)
    if annotation is float:
        return Kind("a number", "numbers", _number)
    if annotation is str:
        choices = CHOICES.get(name)
        if choices:
            listed = ", ".join(choices)
            return Kind(f"one of {listed}", f"values from {listed}", _text(choices))
        return Kind("a string", "strings", _text(None))
    if typing.get_origin(annotation) is tuple and typing.get_args(annotation) == (int, int, int):
        return Kind("a list of three whole numbers", "lists of three whole numbers", _triple)
    if isinstance(annotation, types.UnionType) and set(typing.get_args(annotation)) == {int, type(None)}:
        return Kind('a whole number or "none"', 'whole numbers or "none"', _optional_whole)
    if isinstance(annotation, types.UnionType) and set(typing.get_args(annotation)) == {float, type(None)}:
        return Kind('a number or "none"', 'numbers or "none"', _optional_number)
    return Kind(f"a value of type {getattr(annotation, '__name__', annotation)}", "values", lambda v: v)


@lru_cache(maxsize=32)
def kinds(config_type: type) -> dict[str, Kind]:
    """What each field of a config dataclass accepts, from its type annotation."""
    hints = typing.get_type_hints(config_type)
    return {f.name: _kind(f.name, hints[f.name]) for f in fields(config_type)}


KINDS: dict[str, Kind] = kinds(TrainConfig)


def _shown(v: Any) -> str:
    """A value as the user wrote it (TOML spelling for booleans)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "a table"
    return repr(v)


def shown_value(v: Any) -> str:
    """A default as a study file spells it: true/false, [64, 256, 256], "alternating", 9.9."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        return "[" + ", ".join(shown_value(x) for x in v) + "]"
    if isinstance(v, str):
        return f'"{v}"'
    return repr(v)


def check_field(name: str, value: Any, where: str, config_type: type = TrainConfig) -> Any:
    """The value converted to the field's type, or a StudyFileError naming ``where`` (e.g. 'x.toml: base.lr')."""
    kind = _field_kind(name, where, config_type)
    try:
        converted = kind.convert(value)
    except _Mismatch:
        raise StudyFileError(f"{where}: expected {kind.one}, got {_shown(value)}") from None
    return _in_range(name, converted, where)


def _in_range(name: str, value: Any, where: str) -> Any:
    """The value, or a StudyFileError when it is not finite or outside the field's range (TrainConfig.RANGES)."""
    bad = out_of_range(name, value)
    if bad:
        raise StudyFileError(f"{where}: expected {bad[0]}, got {_shown(bad[1])}")
    for v in value if isinstance(value, (tuple, list)) else (value,):  # any method's fields: finite numbers
        if isinstance(v, float) and not math.isfinite(v):
            raise StudyFileError(f"{where}: expected a finite number, got {_shown(v)}")
    return value


def _field_kind(name: str, where: str, config_type: type = TrainConfig) -> Kind:
    known = kinds(config_type)
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise StudyFileError(f"{where}: unknown {config_type.__name__} field{hint}")
    return known[name]


def check_overrides(table: Any, where: str, config_type: type = TrainConfig) -> dict[str, Any]:
    """A TOML table of field overrides, every value checked; ``where`` is e.g. 'x.toml: base'."""
    if not isinstance(table, dict):
        raise StudyFileError(
            f"{where}: expected a table of {config_type.__name__} fields, got {_shown(table)}"
        )
    return {name: check_field(name, value, f"{where}.{name}", config_type) for name, value in table.items()}


def config_type_of(method: str) -> type:
    return find_method(method).config_type


def build_config(method: str, overrides: Mapping[str, Any], where: str) -> Any:
    """The method's defaults with the overrides; the config's own checks (e.g. tta_level) become one line."""
    try:
        return find_method(method).config(**overrides)
    except (ValueError, TypeError) as exc:
        raise StudyFileError(f"{where}: {exc}") from None


# --------------------------------------------------------------------------- --set FIELD=VALUE


def _cli_literal(text: str) -> Any:
    """A --set value read as TOML (13, 0.5, true, [16, 32, 32], "x"), else as a bare word or a list."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if "," in text:
        return [_cli_literal(part.strip()) for part in text.strip("[]()").split(",")]
    return text


def parse_set(items: Sequence[str], flag: str = "--set", config_type: type = TrainConfig) -> dict[str, Any]:
    """``["lr=13", "flip=random", "widths=32,64,64", "n_train=none"]`` -> overrides checked against the
    fields of ``config_type`` (the method's config dataclass)."""
    overrides: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise StudyFileError(f"{flag} {item}: expected FIELD=VALUE")
        overrides[name] = check_field(name, _cli_literal(text.strip()), f"{flag} {name}", config_type)
    return overrides


# --------------------------------------------------------------------------- the study file


@dataclass(frozen=True)
class Adaptive:
    """Settings for deciding comparisons with adaptive seeds (see harness.stats.sequential)."""

    precision: float
    max_seeds: int
    min_seeds: int = 10

    def rule(self) -> Rule:
        return Rule(precision=self.precision, max_seeds=self.max_seeds, min_seeds=self.min_seeds)


@dataclass(frozen=True)
class StudyFile:
    """A parsed study file: its cells (as a built-in study's grid gives them) and what to compare."""

    path: str
    name: str  # the file's stem; names the study in the store and reports
    method: str  # the method spec (see harness.spec.methods)
    description: str
    base: Any  # the method with the base overrides (and --set)
    cells: tuple[Cell, ...]
    baseline: Cell | None  # variants: the base config; grid: the cell equal to it, if any
    primary: Cell | None  # the cell whose comparison with the baseline the study is about
    adaptive: Adaptive | None
    claim: ClaimSpec | None = None  # [claim]: a record claim about the base config's runs

    @property
    def comparisons(self) -> list[tuple[Cell, Cell]]:
        """(cell, baseline) for every cell but the baseline, the primary first."""
        if self.baseline is None:
            return []
        others = [c for c in self.cells if c is not self.baseline]
        others.sort(key=lambda c: c is not self.primary)
        return [(c, self.baseline) for c in others]

    @property
    def claimed(self) -> tuple[ClaimSpec, Cell]:
        """The claim and the cell it is about (the base config's); only for a file with a [claim]."""
        if self.claim is None or self.baseline is None:
            raise StudyFileError(f"{self.name}: no [claim] about the base config's cell")
        return self.claim, self.baseline

    @property
    def compared_baseline(self) -> Cell:
        """The baseline of a study that has comparisons (adaptive rounds run only on those)."""
        if self.baseline is None:
            raise StudyFileError(
                f"{self.name}: no cell equals the base, so nothing is compared with a baseline"
            )
        return self.baseline


def load(
    path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    method: str | None = None,
    set_items: Sequence[str] = (),
) -> StudyFile:
    """Read and check a study file. ``overrides`` (from :func:`parse_set`), ``set_items`` (raw
    ``--set FIELD=VALUE`` strings, checked against the method's fields) and ``method`` replace the
    file's base overrides and method for every cell."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise StudyFileError(f"{source}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise StudyFileError(f"{source}: not a UTF-8 text file") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyFileError(f"{source}: invalid TOML: {exc}") from None
    return parse(data, source, overrides, method, set_items)


def parse(
    data: Mapping[str, Any],
    source: str,
    overrides: Mapping[str, Any] | None = None,
    method: str | None = None,
    set_items: Sequence[str] = (),
) -> StudyFile:
    """Check a study file's table (already read from TOML); ``source`` names it in messages."""
    for key in data:
        if key not in TOP_KEYS:
            close = difflib.get_close_matches(key, TOP_KEYS, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise StudyFileError(f"{source}: {key}: unknown key ({hint}expected {', '.join(TOP_KEYS)})")
    method = _method({"method": method} if method else data, source, "--method" if method else "method")
    config_type = config_type_of(method)
    overrides = {
        name: check_field(name, value, f"--set {name}", config_type)
        for name, value in {**dict(overrides or {}), **parse_set(set_items, config_type=config_type)}.items()
    }
    description = data.get("description", "")
    if not isinstance(description, str):
        raise StudyFileError(f"{source}: description: expected a string, got {_shown(description)}")
    base_overrides = check_overrides(data.get("base", {}), f"{source}: base", config_type) | overrides
    base = build_config(method, base_overrides, f"{source}: base")
    if "variants" in data and "grid" in data:
        raise StudyFileError(f"{source}: grid: expected either [variants] or [grid], not both")
    baseline: Cell | None
    if "variants" in data:
        cells, baseline = _variant_cells(data["variants"], method, base_overrides, base, source, config_type)
        primary = _variant_primary(data, cells, source)
    elif "grid" in data:
        cells = _grid_cells(data["grid"], method, base_overrides, source, config_type)
        baseline = next((c for c in cells if c.config == base), None)
        primary = _grid_primary(data, cells, baseline, source, config_type)
    elif "claim" in data:  # a claim about one configuration: the base config is the only cell
        baseline = Cell({"variant": BASELINE}, base, method)
        cells, primary = [baseline], None
    else:
        raise StudyFileError(
            f"{source}: variants: missing; expected a [variants] table, a [grid] table or a [claim] table"
        )
    claim = _claim(data, baseline, source)
    adaptive = _adaptive(data, baseline, source, claim_only=claim is not None and len(cells) == 1)
    name = Path(source).stem
    return StudyFile(
        source,
        name,
        method,
        description or f"study file {Path(source).name}",
        base,
        tuple(cells),
        baseline,
        primary,
        adaptive,
        claim,
    )


def _claim(data: Mapping[str, Any], baseline: Cell | None, source: str) -> ClaimSpec | None:
    if "claim" not in data:
        return None
    try:
        claim = parse_claim(data["claim"], source)
    except UserError as exc:
        raise StudyFileError(str(exc)) from None
    if baseline is None:
        raise StudyFileError(
            f"{source}: claim: no grid cell equals the base config, whose runs the claim is about; "
            "add the base values to the grid"
        )
    return claim


def _method(data: Mapping[str, Any], source: str, key: str = "method") -> str:
    """The method spec, resolved once here so that every mistake in it is one line naming the file."""
    expected = f"a built-in ({', '.join(builtin_names())}), package.module:NAME or path/to/file.py:NAME"
    if "method" not in data:
        raise StudyFileError(f"{source}: method: missing; expected {expected}")
    method = data["method"]
    if not isinstance(method, str):
        raise StudyFileError(f"{source}: {key}: expected {expected}, got {_shown(method)}")
    try:
        find_method(method)
    except MethodError as exc:
        text = str(exc).removeprefix(f"method {method}: ")
        raise StudyFileError(f"{source}: {key}: {text}") from None
    return method


def _variant_cells(
    table: Any,
    method: str,
    base_overrides: dict[str, Any],
    base: Any,
    source: str,
    config_type: type = TrainConfig,
) -> tuple[list[Cell], Cell]:
    if not isinstance(table, dict) or not table:
        raise StudyFileError(f"{source}: variants: expected at least one [variants.NAME] table of overrides")
    if len(table) + 1 > MAX_CELLS:
        raise StudyFileError(
            f"{source}: variants: {len(table) + 1:,} cells is above the bound of {MAX_CELLS:,} "
            "cells per study; split it into several studies"
        )
    baseline = Cell({"variant": BASELINE}, base, method)
    cells = [baseline]
    for name, overrides in table.items():
        where = f"{source}: variants.{name}"
        if name == BASELINE:
            raise StudyFileError(f"{where}: the name {BASELINE!r} is the base config; choose another name")
        own, own_type, inherited = method, config_type, base_overrides
        if isinstance(overrides, dict) and "method" in overrides:
            # another method for this variant: the base overrides it has fields for (sizes), then its own
            overrides = dict(overrides)
            own = _method({"method": overrides.pop("method")}, source, f"variants.{name}.method")
            own_type = config_type_of(own)
            have = {f.name for f in fields(own_type)}
            inherited = {k: v for k, v in base_overrides.items() if k in have}
        config = build_config(own, inherited | check_overrides(overrides, where, own_type), where)
        if own == method and config == base:
            raise StudyFileError(f"{where}: expected at least one override that differs from the base config")
        cells.append(Cell({"variant": name}, config, own))
    return cells, baseline


def _variant_primary(data: Mapping[str, Any], cells: list[Cell], source: str) -> Cell | None:
    if "primary" not in data:
        return None
    names = [c.factors["variant"] for c in cells[1:]]
    primary = data["primary"]
    if primary not in names:
        raise StudyFileError(
            f"{source}: primary: expected one of the variants ({', '.join(names)}), got {_shown(primary)}"
        )
    return cells[1 + names.index(primary)]


def _grid_cells(
    table: Any, method: str, base_overrides: dict[str, Any], source: str, config_type: type = TrainConfig
) -> list[Cell]:
    if not isinstance(table, dict) or not table:
        raise StudyFileError(f"{source}: grid: expected at least one FIELD = [values] (the grid is empty)")
    axes: dict[str, list[Any]] = {}
    for name, values in table.items():
        where = f"{source}: grid.{name}"
        kind = _field_kind(name, where, config_type)
        if not isinstance(values, list):
            raise StudyFileError(f"{where}: expected a list of {kind.many}, got {_shown(values)}")
        if not values:
            raise StudyFileError(f"{where}: expected a non-empty list of {kind.many}, got []")
        checked = []
        for v in values:
            try:
                checked.append(_in_range(name, kind.convert(v), where))
            except _Mismatch:
                raise StudyFileError(f"{where}: expected a list of {kind.many}, got {_shown(v)}") from None
        repeated = next((v for i, v in enumerate(checked) if v in checked[:i]), None)
        if repeated is not None:
            raise StudyFileError(f"{where}: expected distinct values, got {_shown(repeated)} twice")
        axes[name] = checked
    size = math.prod(len(v) for v in axes.values())
    if size > MAX_CELLS:
        shape = " x ".join(f"{len(v)} {k}" for k, v in axes.items())
        raise StudyFileError(
            f"{source}: grid: {size:,} cells ({shape}) is above the bound of {MAX_CELLS:,} cells "
            "per study; split it into several studies"
        )
    cells = []
    for combo in itertools.product(*axes.values()):
        factors = dict(zip(axes, combo))
        cells.append(
            Cell(
                factors,
                build_config(
                    method,
                    base_overrides | factors,
                    f"{source}: grid ({', '.join(f'{k}={v}' for k, v in factors.items())})",
                ),
                method,
            )
        )
    return cells


def _grid_primary(
    data: Mapping[str, Any],
    cells: list[Cell],
    baseline: Cell | None,
    source: str,
    config_type: type = TrainConfig,
) -> Cell | None:
    if "primary" not in data:
        return None
    primary = data["primary"]
    example = "{" + ", ".join(f"{k} = {_shown(v)}" for k, v in cells[-1].factors.items()) + "}"
    if not isinstance(primary, dict) or not primary or set(primary) - set(cells[0].factors):
        raise StudyFileError(
            f"{source}: primary: expected a table of grid values naming one cell, e.g. "
            f"{example}, got {_shown(primary)}"
        )
    wanted = {k: check_field(k, v, f"{source}: primary.{k}", config_type) for k, v in primary.items()}
    matches = [c for c in cells if all(c.factors[k] == v for k, v in wanted.items())]
    if len(matches) != 1:
        raise StudyFileError(
            f"{source}: primary: expected grid values naming one cell, e.g. {example}; "
            f"{len(matches)} cells match"
        )
    if baseline is None:
        raise StudyFileError(
            f"{source}: primary: no grid cell equals the base config, so there is no "
            "baseline to compare with; add the base values to the grid"
        )
    if matches[0] is baseline:
        raise StudyFileError(f"{source}: primary: expected a cell other than the baseline (the base config)")
    return matches[0]


def _adaptive(
    data: Mapping[str, Any], baseline: Cell | None, source: str, claim_only: bool = False
) -> Adaptive | None:
    if "adaptive" not in data:
        return None
    table = data["adaptive"]
    where = f"{source}: adaptive"
    if not isinstance(table, dict):
        raise StudyFileError(f"{where}: expected a table with precision and max_seeds, got {_shown(table)}")
    for key in table:
        if key not in ADAPTIVE_KEYS:
            raise StudyFileError(f"{where}.{key}: unknown key (expected {', '.join(ADAPTIVE_KEYS)})")
    for key in ADAPTIVE_KEYS[int(claim_only) : 2]:  # a claim alone has no "equal within ±P"
        if key not in table:
            raise StudyFileError(f"{where}.{key}: missing")
    precision = table.get("precision", 1.0)
    if isinstance(precision, bool) or not isinstance(precision, (int, float)) or not 0 < precision < math.inf:
        raise StudyFileError(
            f"{where}.precision: expected a positive number of points, got {_shown(precision)}"
        )
    counts = {}
    for key in ("max_seeds", "min_seeds"):
        value = table.get(key, 10)
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise StudyFileError(f"{where}.{key}: expected a whole number of at least 2, got {_shown(value)}")
        counts[key] = value
    if counts["min_seeds"] > counts["max_seeds"]:
        raise StudyFileError(
            f"{where}.min_seeds: expected at most max_seeds ({counts['max_seeds']}), "
            f"got {counts['min_seeds']}"
        )
    if baseline is None:
        raise StudyFileError(
            f"{where}: no grid cell equals the base config, so there is no baseline to "
            "compare with; add the base values to the grid"
        )
    return Adaptive(float(precision), counts["max_seeds"], counts["min_seeds"])
