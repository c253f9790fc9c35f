"""Command lines: argument parsing and one-line errors only (``common``), one module per command:
``study``, ``report``, ``compare``, ``store``. Each is reached as ``python -m harness.<command>``."""
