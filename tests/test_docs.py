"""Docs that cannot go stale: the README is a front page; every example output in the README and
docs/ is what the code prints now (numbers, paths and hashes masked; wording and layout compared;
written by ``python -m harness.bench docs``); every flag of every command is in the CLI page."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from harness.bench import docs

ROOT = Path(__file__).resolve().parents[1]


def test_readme_is_a_front_page_with_the_two_set_up_commands():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 200
    ci_test_command = (ROOT / ".ci/run").read_text().strip().splitlines()[-1]
    assert "pytest" in ci_test_command and ci_test_command in readme
    assert "python -m harness.study flip_vs_alternating --seeds 400" in readme
    for link in re.findall(r"\]\((docs/[\w.-]+\.md)", readme):
        assert (ROOT / link).exists(), link


def test_every_example_is_in_its_pages_and_filled():
    for example in docs.EXAMPLES:
        for page, text in docs.documented(example.name).items():
            assert text.strip(), f"{page}: example {example.name} is empty; run python -m harness.bench docs"
        for _, target in example.figures:
            assert (docs.DOCS / target).stat().st_size > 10_000


def test_masking_keeps_wording_and_hides_numbers_and_paths():
    a = docs.masked("| 2 ⚠ | 18.95 [5.61, 32.29] | `/data/x.tar.gz` | 0123456789abcdef | −0.5 |")
    b = docs.masked("| 40 | 93.10 [92.9, 93.3] | `results/store` | fedcba9876543210 | 12 |")
    assert a != b and a[0].replace(" ⚠", "") == b[0]
    assert docs.masked("n too small") != docs.masked("p = n/a")


def documented_as(name: str) -> list[str]:
    (text, *others) = docs.documented(name).values()
    assert all(docs.masked(o) == docs.masked(text) for o in others)
    return docs.masked(text)


@pytest.mark.slow  # the suite's trained smoke campaign
def test_smoke_report_opening_is_what_the_report_says(flip_smoke, data_source):
    report = docs.as_documented((flip_smoke / "out" / "report.md").read_text(), data_source)
    assert docs.masked(docs.report_opening(report)) == documented_as("smoke-report")


@pytest.mark.slow  # the suite's trained smoke campaign
def test_verdicts_table_is_what_the_campaign_prints(flip_smoke, capsys):
    from harness.cli.study import print_verdicts
    from harness.spec.studies import find_study

    study = find_study("flip_vs_alternating")
    assert study is not None
    print_verdicts(study, flip_smoke / "out")
    assert docs.masked(docs.verdicts_table(capsys.readouterr().out)) == documented_as("verdicts")


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every --flag of a parser and of its subcommands."""
    found = set()
    for action in parser._actions:
        found |= {s for s in action.option_strings if s.startswith("--") and s != "--help"}
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= option_strings(sub)
    return found


@pytest.mark.parametrize("module", ["harness.cli.study", "harness.cli.export", "harness.cli.store"])
def test_every_flag_is_in_the_cli_page(module):
    import importlib

    page = (ROOT / "docs" / "cli.md").read_text()
    flags = option_strings(importlib.import_module(module).build_parser())
    assert flags and not {f for f in flags if f not in page}
