"""What makes a training method runnable by a harness: a name, a config dataclass, and ``train``.

A method is plain data. The harness finds one by name (the built-ins), by ``package.module:NAME``
or by ``path/to/file.py:NAME``; built-ins and a researcher's own code register the same way. This
module imports no torch, so listing methods and checking a study's fields stay instant.

Contract for ``train(config, seed, data, device, save_logits=False) -> RunResult``:
- ``config`` is an instance of ``config_type`` (a frozen dataclass whose fields have types and
  defaults); ``defaults`` is the instance the method starts from;
- the three random streams (init, data order, augmentation) come from
  ``airbench_core.train.derive_seed(seed, "init" | "order" | "aug")`` (or the config's
  ``init_seed``/``order_seed``/``aug_seed`` when pinned), so a seed pairs across variants;
- ``data`` is a :class:`~airbench_core.data.Cifar10` or a ``DeviceData`` resident on ``device``.
``train_many`` is an optional fast path with the signature of ``airbench_core.train.train_many``
(packed runs, a network pool, torch.compile); a method without one trains run by run.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Method:
    """A training method as the harness runs it: plain data, so that it can be named on a command
    line or in a study file and resolved on every worker.

    - ``name``: what ``--method``, study files and run records call it;
    - ``defaults``: an instance of its config dataclass (frozen, every field typed with a default);
      study files and ``--set`` change its fields, checked against their types;
    - ``train(config, seed, data, device, save_logits=False) -> RunResult``: one run, its three random
      streams derived from ``seed`` so that seed s pairs across variants (see the module's contract);
    - ``summary`` and ``field_help``: one line for ``--list-methods`` and per field for ``--list-fields``;
    - ``sources``: the files that define it; their hash is the method version recorded with each run;
    - ``train_many``: an optional fast path (packed, pooled or compiled runs);
    - ``reference_seconds_per_epoch``: one H200's seconds per epoch, for dry-run costs with no runs yet;
    - ``key_name`` and ``key_baseline``: what run keys hash (default: ``name`` and the defaults).
    """

    name: str
    defaults: Any  # an instance of the config dataclass
    train: Callable[..., Any]  # train(config, seed, data, device, save_logits=False)
    summary: str = ""  # one line for --list-methods
    field_help: Mapping[str, str] = field(default_factory=dict)  # one line per config field
    sources: tuple[str, ...] = ()  # files (paths) whose code defines the method
    train_many: Callable[..., list] | None = None  # optional packed/pooled/compiled fast path
    reference_seconds_per_epoch: float | None = None  # one H200, uncompiled: for plans with no runs yet
    key_name: str | None = None  # the name run keys hash (default: ``name``)
    key_baseline: tuple | None = None  # frozen (field, value) pairs keys compare against
    # Fields the smoke preset sets for this method on top of the shared smoke sizing (narrow widths,
    # small batches): the fields that must shrink with those, e.g. a second network or a sub-batch.
    smoke: Mapping[str, Any] = field(default_factory=dict)

    def key(self, config: Any, seed: int) -> str:
        """The run key of ``config`` trained with ``seed`` by this method (see :func:`run_key`)."""
        return run_key(self.key_name or self.name, config, seed, self.key_baseline)

    @property
    def config_type(self) -> type:
        return type(self.defaults)

    def config(self, **overrides) -> Any:
        """The method's config with some fields changed (unknown names raise ValueError)."""
        return replace_fields(self.defaults, overrides)


def deferred(module: str, name: str) -> Callable[..., Any]:
    """``module.name``, imported on the first call: a method's config module can name its torch-heavy
    training code without importing it (and without an import cycle between the two modules)."""

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"``{module}.{name}``, imported on first use."
    return call


class ConfigMethods:
    """What every method's config dataclass does alike: ``replace``, ``to_dict``/``from_dict`` (tuples
    as lists) and ``key``. A subclass sets ``KEY_NAME`` (the method name its keys hash) and may set
    ``KEY_BASELINE`` (frozen (field, value) pairs; default: the class's own defaults)."""

    KEY_NAME: ClassVar[str]
    # Every subclass is a dataclass: declared so that type checkers let dataclasses.asdict/fields
    # take the mixin's self and class.
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]
    KEY_BASELINE: ClassVar[tuple | None] = None

    def replace(self, **changes):
        return replace_fields(self, changes)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict):
        tuples = {f.name for f in dataclasses.fields(cls) if isinstance(f.default, tuple)}
        return cls(**{k: (tuple(v) if k in tuples and v is not None else v) for k, v in d.items()})

    def key(self, seed: int) -> str:
        """Stable run key: hash of the method name, the fields that differ from the key baseline, and
        the seed. Fields at their baseline value are left out, so a field added later whose default
        reproduces the old behaviour leaves every existing key unchanged."""
        return run_key(self.KEY_NAME, self, seed, self.KEY_BASELINE)


def replace_fields(config: Any, changes: Mapping[str, Any]) -> Any:
    unknown = set(changes) - {f.name for f in dataclasses.fields(config)}
    if unknown:
        raise ValueError(f"unknown config field(s): {', '.join(sorted(unknown))}")
    return dataclasses.replace(config, **changes)


def config_dict(config: Any) -> dict:
    """A config's fields as plain JSON-ready values (tuples become lists)."""
    return {
        f.name: (list(v) if isinstance(v := getattr(config, f.name), tuple) else v)
        for f in dataclasses.fields(config)
    }


def canonical(value: Any, like: Any) -> Any:
    """One spelling per value: ints where the baseline holds a float become floats, tuples lists."""
    if isinstance(value, tuple):
        return [canonical(v, None) for v in value]
    if isinstance(like, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@functools.lru_cache(maxsize=4096)
def key_prefix(method_name: str, config: Any, baseline_items: tuple | None = None) -> bytes:
    """Everything hashed for a run key but the seed: the method name and the fields whose values
    differ from the baseline (the config class's defaults, or a frozen ``baseline_items``), so a
    field added later whose default reproduces the old behaviour leaves every existing key alone."""
    baseline = {k: canonical(v, None) for k, v in (baseline_items or ())}
    defining = {}
    for f in dataclasses.fields(config):
        default = baseline[f.name] if f.name in baseline else canonical(f.default, f.default)
        value = canonical(getattr(config, f.name), default)
        if value != default or type(value) is not type(default):
            defining[f.name] = value
    blob = json.dumps({"method": method_name, "config": defining}, sort_keys=True, separators=(",", ":"))
    return (blob[:-1] + ',"seed":').encode()


def run_key(method_name: str, config: Any, seed: int, baseline_items: tuple | None = None) -> str:
    """Stable run key: 20 hex digits of the hash of method, defining fields and seed."""
    return hashlib.sha256(key_prefix(method_name, config, baseline_items) + b"%d}" % int(seed)).hexdigest()[
        :20
    ]
