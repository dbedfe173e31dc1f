"""Workspace files: write, read, list, delete; paths that leave the workspace are refused."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from litestar import Litestar
from litestar.testing import AsyncTestClient

Client = AsyncTestClient[Litestar]


async def test_write_read_list_delete(lite: Client) -> None:
    created = await lite.put("/api/files/notes/today.txt", content=b"bees\n")
    assert created.status_code == 201, created.text
    assert created.json()["path"] == "notes/today.txt"
    assert created.json()["size"] == 5
    replaced = await lite.put("/api/files/notes/today.txt", content=b"wasps\n")
    assert replaced.status_code == 200
    read = await lite.get("/api/files/notes/today.txt")
    assert read.content == b"wasps\n"
    assert read.headers["content-type"].startswith("text/plain")

    top = (await lite.get("/api/files")).json()
    assert [(item["name"], item["type"]) for item in top["items"]] == [("notes", "directory")]
    inside = (await lite.get("/api/files", params={"dir": "notes"})).json()
    assert [item["path"] for item in inside["items"]] == ["notes/today.txt"]

    assert (await lite.delete("/api/files/notes")).status_code == 409  # not empty
    assert (await lite.delete("/api/files/notes/today.txt")).status_code == 204
    assert (await lite.get("/api/files/notes/today.txt")).status_code == 404
    assert (await lite.delete("/api/files/notes")).status_code == 204
    assert (await lite.get("/api/files", params={"dir": "notes"})).status_code == 404


async def test_paths_outside_the_workspace(lite: Client, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("no")
    workspace = tmp_path / "workspace"
    workspace.mkdir(exist_ok=True)
    (workspace / "link.txt").symlink_to(secret)
    (workspace / "up").symlink_to(tmp_path)
    for url in (
        "/api/files/..%2Fsecret.txt",
        "/api/files/a/..%2F..%2Fsecret.txt",
        "/api/files/link.txt",
        "/api/files/up/secret.txt",
    ):
        response = await lite.get(url)
        assert response.status_code == 400, (url, response.text)
        assert response.json()["errors"][0]["code"] == "path_outside_workspace"
    # Slashes collapse in URL paths: an absolute path there names a file inside the workspace.
    absolute = await lite.get("/api/files/" + quote(str(secret), safe=""))
    assert absolute.status_code == 404
    assert (await lite.get("/api/files", params={"dir": str(tmp_path)})).status_code == 400
    written = await lite.put("/api/files/up/evil.txt", content=b"x")
    assert written.status_code == 400
    assert not (tmp_path / "evil.txt").exists()
    listing = await lite.get("/api/files", params={"dir": "../"})
    assert listing.status_code == 400
    shown = (await lite.get("/api/files")).json()["items"]
    assert shown == []  # symlinks pointing outside are not listed
