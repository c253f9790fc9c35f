"""airbench-harness: campaigns of many seeded runs of a training method, and their statistics.

Packages in layers; each imports only from layers below it (an import-linter contract in
pyproject.toml checks this in CI):

    bench, cli        command lines: argument parsing, one-line errors, benchmarks
    (studies/)        the built-in studies, found by name as plugins
    report            analyses the studies compose, pages, figures, report writing, comparisons
    run               campaigns, Ray and local backends, workers, adaptive rounds, simulated runs
    store             the run store: records, files, compaction, migration, locks
    spec              what is asked: grids, run specs, study files, method versions, user errors
    stats             estimators, intervals, tests, sequences, planning; numpy and scipy only
    airbench_core     the training methods (never imports harness)

``python -m harness.study|report|compare|store|bench`` are the commands.
"""

import os

# Analyses multiply small, skinny matrices; OpenBLAS's threads only contend for the cores there (a
# 100 x 10,000 Gram matrix took 0.3 s with threads on a busy 2-core machine, 3 ms with one). Set
# here, before any entry point imports numpy; set the variable yourself to override.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _quiet_interrupt() -> None:
    """For ``python -m harness.*`` only: a Ctrl-C that arrives before a command's own handling starts
    (while its modules import, the first second) ends with one line, not a traceback. Nothing has been
    written by then; a command that is running catches Ctrl-C itself and says what it kept."""
    import sys

    if not sys.argv or sys.argv[0] != "-m":  # argv[0] is "-m" while ``python -m`` imports the package
        return
    previous = sys.excepthook

    def hook(kind, value, traceback) -> None:
        if issubclass(kind, KeyboardInterrupt):
            print("stopped by Ctrl-C before the command started; nothing was changed", file=sys.stderr)
            return
        previous(kind, value, traceback)

    sys.excepthook = hook


_quiet_interrupt()
