"""``python -m harness.report OUT_DIR``: the command line lives in ``harness.cli.report`` (this
forwarding line is the one upward import the layer contract allows)."""

import sys

from harness.cli.report import main

sys.exit(main())
