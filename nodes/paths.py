"""Workspace path safety: a file node's path must resolve (symlinks followed) inside the workspace.

Checked when a workflow is validated (a static `path` param) and again just before each read or
write (a path from an input port, or a symlink created since). A path that is swapped for a
symlink between the check and the open is not caught (no `openat`-style confinement here).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from engine.documents.issues import Issue
from engine.errors import NodeFailure, NodeloomError

CODE: Final = "path_outside_workspace"


class PathOutsideWorkspace(NodeloomError, ValueError):
    """A path that resolves outside the workspace folder."""


# The `path` param of the file nodes.
PATH_PARAM: Final[dict[str, Any]] = {
    "type": "string",
    "minLength": 1,
    "description": "A path relative to the workspace folder.",
}


def outside_message(path: str) -> str:
    return f"path {path!r} is outside the workspace folder"


def resolve(workspace: Path, path: str) -> Path:
    """The absolute, symlink-resolved file ``path`` names, relative to ``workspace``; raises
    `PathOutsideWorkspace` when it is not inside it (or is the workspace itself)."""
    if not path or "\x00" in path:
        raise PathOutsideWorkspace(f"path {path!r} is not a file path")
    root = workspace.resolve()
    target = (root / path).resolve()
    if target == root or not target.is_relative_to(root):
        raise PathOutsideWorkspace(outside_message(path))
    return target


def relative(workspace: Path, target: Path) -> str:
    """``target`` (from `resolve`) as a POSIX path relative to the workspace."""
    return target.relative_to(workspace.resolve()).as_posix()


def path_issue(path: object, workspace: Path | None) -> Issue | None:
    """A validation issue for a static ``path`` param that escapes the workspace. Without a
    workspace only what the text itself shows is checked (``..`` climbing above it)."""
    if not isinstance(path, str):
        return None
    if workspace is not None:
        try:
            resolve(workspace, path)
        except PathOutsideWorkspace as exc:
            return Issue(CODE, exc.detail, path="/path")
        return None
    normal = posixpath.normpath(path.replace("\\", "/"))
    if not path or normal == ".." or normal.startswith("../"):
        return Issue(CODE, outside_message(path), path="/path")
    return None  # an absolute path is checked when the node runs, against its workspace


def node_target(workspace: Path, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> Path:
    """The file a file node works on: its `path` input when connected, else its `path` param;
    a `NodeFailure` when there is none or it escapes the workspace."""
    path = inputs.get("path")
    if path is None:
        path = params.get("path")
    if not isinstance(path, str):
        raise NodeFailure(
            "no file path: set the `path` param or connect the `path` input", retryable=False
        )
    try:
        return resolve(workspace, path)
    except PathOutsideWorkspace as exc:
        raise NodeFailure(exc.detail, retryable=False) from None
