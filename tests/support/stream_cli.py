"""`nodeloom` with one extra node type, `stream` (`tests.support.nodes.Stream`), which emits
tokens slowly: the way to test token display and Ctrl+C without an LLM.

Usage: python -m tests.support.stream_cli [nodeloom arguments…]
"""

from __future__ import annotations

import sys

from server.cli import main
from tests.support.engine import builtin_registry
from tests.support.nodes import Stream

if __name__ == "__main__":
    registry = builtin_registry()
    registry.register(Stream)
    sys.exit(main(sys.argv[1:], registry=registry))
