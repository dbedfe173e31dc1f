"""A `nodeloom worker` with the test node types (sleep, flaky, stream), for the worker tests.

Usage: python -m tests.support.worker DATABASE_URL [worker options…]
"""

from __future__ import annotations

import sys

from server.cli import main
from tests.nodes_for_tests import test_registry

if __name__ == "__main__":
    sys.exit(main(["worker", "--db", sys.argv[1], *sys.argv[2:]], registry=test_registry()))
