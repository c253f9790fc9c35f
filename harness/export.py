"""``python -m harness.export OUT --format csv|parquet``: exporting; the code lives in ``harness.cli.export``."""

import sys

from harness.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
