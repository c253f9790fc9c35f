"""Finds studies by name, as plugins: harness/ never imports the studies package statically, so
studies (which import harness tools) and harness form no import cycle.

A study is any module in the ``studies`` package (or another package named here) with a ``STUDY``
attribute (a harness.spec.grid.Study).
"""

from __future__ import annotations

import importlib
import pkgutil

from harness.spec.grid import Study

PACKAGES = ("studies",)


def all_studies(packages: tuple[str, ...] = PACKAGES) -> dict[str, Study]:
    """Every study in ``packages``, by name, in module order (the package's own order if it lists one)."""
    found: dict[str, Study] = {}
    for package_name in packages:
        package = importlib.import_module(package_name)
        names = [m.name for m in pkgutil.iter_modules(package.__path__)]
        preferred = list(getattr(package, "ORDER", ()))
        for name in sorted(
            names, key=lambda n: (preferred.index(n) if n in preferred else len(preferred), n)
        ):
            study = getattr(importlib.import_module(f"{package_name}.{name}"), "STUDY", None)
            if isinstance(study, Study):
                found.setdefault(study.name, study)
    return found


def find_study(name: str | None, packages: tuple[str, ...] = PACKAGES) -> Study | None:
    """The study called ``name``, or None."""
    return all_studies(packages).get(name) if name else None
