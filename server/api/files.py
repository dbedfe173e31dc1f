"""``/api/files``: the workspace folder the file nodes read and write. With auth, each user has
a folder of their own (``users/<user id>/`` in the workspace). A path that leaves the folder —
``..``, an absolute path, a symlink pointing outside — is refused before anything is touched."""

from __future__ import annotations

import asyncio
import errno
import mimetypes
import os
import re
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import msgspec
from litestar import Controller, Response, delete, get, put
from litestar.params import FromPath, FromQuery, QueryParameter, RawBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from engine.errors import Conflict, NotFound
from nodes.paths import PathOutsideWorkspace, relative, resolve
from server.api.deps import EngineDep, PrincipalDep
from server.api.schemas import Limit
from server.openapi import OpenApiFacts
from server.problems import ApiError, ErrorItem, documented

T = TypeVar("T")


class FileInfo(msgspec.Struct, kw_only=True):
    name: str
    path: str
    type: Literal["file", "directory"]
    size: int
    modified_at: datetime


class FilePage(msgspec.Struct, kw_only=True):
    dir: str
    items: list[FileInfo]
    next_cursor: str | None = None


def root_of(engine: EngineDep, principal: PrincipalDep) -> Path:
    """The caller's files: the folder their runs' file nodes use too."""
    root = engine.runs.workspace_of(principal.user.id if principal.user is not None else None)
    root.mkdir(parents=True, exist_ok=True)
    return root


# A file path as the OpenAPI document declares it: relative, `/`-separated, no `.` or `..`
# segment, no empty one, no backslash or control character.
_CHAR = r"[^/\\\x00-\x1f\x7f]"
_SEGMENT = rf"(?:[^/\\\x00-\x1f\x7f.]{_CHAR}*|\.[^/\\\x00-\x1f\x7f.]{_CHAR}*|\.\.{_CHAR}+)"
FILE_PATH_PATTERN = rf"^{_SEGMENT}(?:/{_SEGMENT})*$"
_FILE_PATH = re.compile(FILE_PATH_PATTERN)
DIR_PATTERN = rf"^(?:/|\.|{_SEGMENT}(?:/{_SEGMENT})*/?)?$"  # "", "/" and ".": the top
PATH_FACTS = OpenApiFacts(parameters={"file_path": {"pattern": FILE_PATH_PATTERN}})


def target(root: Path, path: str) -> Path:
    """The file ``path`` names inside ``root`` (symlinks followed), or a 400 problem."""
    if path.startswith("/") or Path(path).is_absolute() or "\\" in path:
        raise _outside(path, "an absolute path")
    if not _FILE_PATH.match(path):
        raise _outside(path[:200], "not `/`-separated names, none of them empty, `.` or `..`")
    try:
        return resolve(root, path)
    except PathOutsideWorkspace as exc:
        raise _outside(path, exc.detail) from None
    except OSError as exc:
        raise _bad_path(path, exc) from None


# What a path can get wrong on its own (too long, a file used as a folder, …): the client's.
CLIENT_ERRNOS = {errno.ENAMETOOLONG, errno.EINVAL, errno.ENOTDIR, errno.EISDIR, errno.ELOOP}


def _bad_path(path: str, exc: OSError) -> ApiError:
    detail = f"path {path[:200]!r} cannot be used: {exc.strerror or exc}"
    return ApiError(400, detail, errors=[ErrorItem("invalid_path", detail, path="/path")])


def client_errors(path: str, work: Callable[[], T]) -> T:
    """Run a file operation; an error the path itself causes is a 400, not a 500."""
    try:
        return work()
    except OSError as exc:
        if exc.errno in CLIENT_ERRNOS:
            raise _bad_path(path, exc) from None
        raise


def _outside(path: str, why: str) -> ApiError:
    detail = f"path {path!r} is not inside the workspace ({why})"
    return ApiError(400, detail, errors=[ErrorItem("path_outside_workspace", detail, path="/path")])


def info(root: Path, path: Path) -> FileInfo:
    stat = path.stat()
    return FileInfo(
        name=path.name,
        path=relative(root, path),
        type="directory" if path.is_dir() else "file",
        size=0 if path.is_dir() else stat.st_size,
        modified_at=datetime.fromtimestamp(stat.st_mtime, UTC),
    )


def _listing(root: Path, folder: Path, limit: int, cursor: str | None) -> FilePage:
    if not folder.is_dir():
        raise NotFound(f"no folder {relative(root, folder) if folder != root.resolve() else ''!r}")
    names = sorted(entry.name for entry in folder.iterdir())
    names = [name for name in names if cursor is None or name > cursor]
    page = names[:limit]
    inside = []
    for name in page:
        entry = folder / name
        if entry.resolve().is_relative_to(root.resolve()):  # a symlink out is not shown
            inside.append(info(root, entry.resolve() if entry.is_symlink() else entry))
    shown = "" if folder == root.resolve() else relative(root, folder)
    return FilePage(dir=shown, items=inside, next_cursor=page[-1] if len(names) > limit else None)


def _read(path: Path) -> bytes:
    if path.is_dir():
        raise ApiError(400, f"{path.name!r} is a folder: list it with GET /api/files?dir=…")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"no file {path.name!r}") from None


def _write(root: Path, path: Path, content: bytes) -> tuple[FileInfo, bool]:
    """Write the whole file or nothing (a temporary file renamed into place)."""
    if path.is_dir():
        raise Conflict(f"{relative(root, path)!r} is a folder, not a file")
    created = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return info(root, path), created


def _delete(root: Path, path: Path) -> None:
    if path.is_dir():
        if any(path.iterdir()):
            raise Conflict(f"folder {relative(root, path)!r} is not empty")
        path.rmdir()
    elif path.exists():
        path.unlink()
    else:
        raise NotFound(f"no file {relative(root, path)!r}")


class FileController(Controller):
    path = "/api/files"
    tags = ["files"]  # noqa: RUF012

    @get("/", summary="List a workspace folder", responses=documented(400, 404))
    async def listing(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        folder: Annotated[
            str,
            QueryParameter(
                name="dir", description="A folder in the workspace", pattern=DIR_PATTERN
            ),
        ] = "",
        limit: Limit = 100,
        cursor: FromQuery[str | None] = None,
    ) -> FilePage:
        root = root_of(engine, principal)
        top = folder in ("", "/", ".")
        where = root.resolve() if top else target(root, folder.removesuffix("/"))
        return await asyncio.to_thread(
            client_errors, folder, lambda: _listing(root, where, limit, cursor)
        )

    @get(
        "/{file_path:path}",
        summary="Read a workspace file (its media type guessed from its name)",
        media_type="application/octet-stream",
        responses=documented(400, 404),
        opt={
            "openapi": OpenApiFacts(
                media_types={"*/*": {"type": "string", "format": "binary"}}, **PATH_FACTS
            )
        },
    )
    async def read(
        self, engine: EngineDep, principal: PrincipalDep, file_path: FromPath[str]
    ) -> Response[bytes]:
        path = target(root_of(engine, principal), file_path.removeprefix("/"))
        content = await asyncio.to_thread(client_errors, file_path, lambda: _read(path))
        media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return Response(content, media_type=media)

    @put(
        "/{file_path:path}",
        status_code=HTTP_200_OK,
        summary="Write a workspace file (the request body, whole); 201 when it is new",
        responses=documented(400, 409, 413),
        opt={"openapi": OpenApiFacts(statuses={201: "Created: the file is new"}, **PATH_FACTS)},
    )
    async def write(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        body: RawBody,
        file_path: FromPath[str],
    ) -> Response[FileInfo]:
        root = root_of(engine, principal)
        path = target(root, file_path.removeprefix("/"))
        written, created = await asyncio.to_thread(
            client_errors, file_path, lambda: _write(root, path, body)
        )
        return Response(written, status_code=HTTP_201_CREATED if created else HTTP_200_OK)

    @delete(
        "/{file_path:path}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Delete a workspace file (or an empty folder)",
        responses=documented(400, 404, 409),
        opt={"openapi": PATH_FACTS},
    )
    async def remove(
        self, engine: EngineDep, principal: PrincipalDep, file_path: FromPath[str]
    ) -> None:
        root = root_of(engine, principal)
        path = target(root, file_path.removeprefix("/"))
        await asyncio.to_thread(client_errors, file_path, lambda: _delete(root, path))
