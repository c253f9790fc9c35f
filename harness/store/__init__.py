"""The run store: one durable Parquet record per run (or per pack), shared by every study.

``harness.store`` itself is the store (``load``, ``load_records``, ``write_run``, ``done_keys``,
``read_manifest``, ``StoreError``, ...); ``record`` builds run records, ``compact`` packs single-run
files, ``migrate`` upgrades stores written by older versions, ``lock`` keeps one driver per folder.
"""

from harness.store.runs import *  # noqa: F403  (the store's functions are this package's public names)
