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
    written by then; a command that is running catches Ctrl-C itself and says what it kept. A Ctrl-C
    inside a C extension's import can surface as another error (numpy turns it into an ImportError),
    so the line is printed for whatever ends the command once Ctrl-C was pressed."""
    import signal
    import sys

    if not sys.argv or sys.argv[0] != "-m":  # argv[0] is "-m" while ``python -m`` imports the package
        return
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return  # Ctrl-C ignored or handled by whoever started us: leave it so
    pressed = []

    def interrupt(signum, frame) -> None:
        pressed.append(signum)
        raise KeyboardInterrupt

    previous = sys.excepthook

    def hook(kind, value, traceback) -> None:
        if not (issubclass(kind, KeyboardInterrupt) or pressed):
            previous(kind, value, traceback)
            return
        print("stopped by Ctrl-C", file=sys.stderr)
        if not issubclass(kind, KeyboardInterrupt):  # (Python itself ends a KeyboardInterrupt by SIGINT)
            sys.stderr.flush()
            os._exit(130)

    signal.signal(signal.SIGINT, interrupt)
    sys.excepthook = hook


_quiet_interrupt()
