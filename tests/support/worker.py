"""A `nodeloom worker` with the test node types (sleep, flaky, stream), for the worker tests.

Usage: python -m tests.support.worker DATABASE_URL [worker options…]

``CANCEL_POLL_S`` in the environment sets how often it asks whether its runs were cancelled.
"""

from __future__ import annotations

import os
import sys

from engine.distributed import worker
from server.cli import main
from tests.support.nodes import test_registry

if __name__ == "__main__":
    if "CANCEL_POLL_S" in os.environ:
        worker.CANCEL_POLL_S = float(os.environ["CANCEL_POLL_S"])
    sys.exit(main(["worker", "--db", sys.argv[1], *sys.argv[2:]], registry=test_registry()))
