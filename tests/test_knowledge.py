"""Collections (SPEC §14) on SQLite and PostgreSQL: indexing workspace files in the background
(unchanged files not redone, removed ones removed, a bad file failed and the rest indexed),
keyword search good enough on natural questions, the sources glob, owners kept apart."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

from engine.errors import Conflict, InputsInvalid, NotFound
from engine.knowledge.indexer import GlobInvalid
from engine.knowledge.service import Knowledge
from engine.storage.database import Database
from tests.support.knowledge_set import DOCUMENTS, QUESTIONS, write_documents


def pdf_bytes(text: str) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def encrypted(data: bytes) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt("secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.fixture
async def knowledge(database: Database, tmp_path: Path) -> Any:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    found = Knowledge(database, None, workspace=workspace, lease_timeout_s=2)
    yield found
    await found.close()


async def indexed(knowledge: Knowledge, collection: str, *globs: str) -> dict[str, Any]:
    job = await knowledge.add(collection, list(globs), owner_id=None)
    done = await knowledge.wait(job.id)
    assert done.status == "done", done
    return done.progress


async def test_keyword_recall_on_the_labelled_set(knowledge: Knowledge) -> None:
    write_documents(knowledge.workspace / "labelled")
    await knowledge.create("labelled", owner_id=None)
    progress = await indexed(knowledge, "labelled", "labelled/*.md")
    assert progress["done"] == progress["total"] == len(DOCUMENTS)
    found = 0
    for question, slug in QUESTIONS:
        hits = await knowledge.search("labelled", question, owner_id=None, k=5)
        found += any(hit.source == f"labelled/{slug}.md" for hit in hits)
    assert found / len(QUESTIONS) >= 0.9


async def test_every_format_and_a_bad_pdf(knowledge: Knowledge) -> None:
    docs = knowledge.workspace / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Bees\n\nBees make honey from nectar.\n")
    (docs / "b.html").write_text(
        "<html><head><style>p {}</style><script>var lava = 1;</script></head>"
        "<body><h1>Volcanoes</h1><p>Magma rises &amp; erupts.</p></body></html>"
    )
    (docs / "c.csv").write_text("planet,colour\nmars,red\n")
    (docs / "d.json").write_text('{"glacier": {"carves": "valleys"}}')
    (docs / "e.txt").write_text("Tides follow the moon.")
    (docs / "f.pdf").write_bytes(pdf_bytes("Penguins huddle through the polar winter."))
    (docs / "g.pdf").write_bytes(encrypted(pdf_bytes("A secret about otters.")))
    (docs / "h.pdf").write_bytes(b"%PDF-1.4 not really")
    await knowledge.create("docs", owner_id=None)
    progress = await indexed(knowledge, "docs", "docs/*")
    assert (progress["total"], progress["failed"]) == (8, 2)
    failed = {error["source"]: error["error"] for error in progress["errors"]}
    assert failed["docs/g.pdf"] == "docs/g.pdf is an encrypted PDF"
    assert failed["docs/h.pdf"].startswith("docs/h.pdf is not a readable PDF")
    collection = await knowledge.get("docs", owner_id=None)
    view = await knowledge.view(collection, files=True)
    assert (view.documents, view.failed, view.chunks) == (6, 2, 6)

    async def top(query: str) -> tuple[str, str]:
        hits = await knowledge.search("docs", query, owner_id=None, k=1)
        return hits[0].source, hits[0].text

    assert await top("What do bees make?") == ("docs/a.md", "# Bees\nBees make honey from nectar.")
    assert await top("magma") == ("docs/b.html", "# Volcanoes\nMagma rises & erupts.")
    assert not await knowledge.search("docs", "lava", owner_id=None)  # the script is left out
    assert await top("red planet?") == ("docs/c.csv", "planet: mars\ncolour: red")
    assert await top("what carves valleys") == ("docs/d.json", "glacier.carves: valleys")
    assert (await top("penguins in winter"))[0] == "docs/f.pdf"
    assert not await knowledge.search("docs", "otters", owner_id=None)


async def test_unchanged_files_are_not_redone_and_removed_ones_go(knowledge: Knowledge) -> None:
    notes = knowledge.workspace / "notes"
    notes.mkdir()
    for name in ("one", "two", "three"):
        (notes / f"{name}.md").write_text(f"# {name}\n\nThe {name} note about comets.\n")
    created = await knowledge.create("notes", owner_id=None, chunk_size=200, chunk_overlap=20)
    first = await indexed(knowledge, "notes", "notes/*.md")
    assert (first["done"], first["unchanged"]) == (3, 0)
    version = (await knowledge.get(created.id, owner_id=None)).version
    before = await knowledge.store.documents(created.id)

    again = await indexed(knowledge, "notes", "notes/*.md")
    assert (again["done"], again["unchanged"], again["removed"]) == (3, 3, 0)
    assert (await knowledge.get(created.id, owner_id=None)).version == version
    assert await knowledge.store.documents(created.id) == before  # the same rows

    (notes / "two.md").write_text("# two\n\nRewritten: now about asteroids.\n")
    (notes / "three.md").unlink()
    changed = await indexed(knowledge, "notes", "notes/*.md")
    assert (changed["total"], changed["unchanged"], changed["removed"]) == (2, 1, 1)
    after = await knowledge.store.documents(created.id)
    assert sorted(after) == ["notes/one.md", "notes/two.md"]
    assert after["notes/one.md"] == before["notes/one.md"]
    assert after["notes/two.md"].id != before["notes/two.md"].id
    assert (await knowledge.get(created.id, owner_id=None)).version == version + 2
    hits = await knowledge.search("notes", "asteroids", owner_id=None)
    assert [hit.source for hit in hits] == ["notes/two.md"]
    assert not await knowledge.search("notes", "comets three", owner_id=None, sources="*three*")


async def test_sources_glob_and_long_documents_in_chunks(knowledge: Knowledge) -> None:
    (knowledge.workspace / "a").mkdir()
    (knowledge.workspace / "b").mkdir()
    body = "\n\n".join(f"Paragraph {n} about lighthouses and their lamps." for n in range(60))
    (knowledge.workspace / "a" / "long.md").write_text(f"# Lights\n\n{body}\n")
    (knowledge.workspace / "b" / "short.md").write_text("Lighthouses guide ships.\n")
    await knowledge.create("lights", owner_id=None, chunk_size=300, chunk_overlap=60)
    await indexed(knowledge, "lights", "a/*.md", "b/*.md")
    view = await knowledge.view(await knowledge.get("lights", owner_id=None), files=True)
    assert view.files is not None
    assert {f.source: f.chunks > 5 for f in view.files} == {"a/long.md": True, "b/short.md": False}
    hits = await knowledge.search("lights", "lighthouses", owner_id=None, k=20, sources="b/*")
    assert [hit.source for hit in hits] == ["b/short.md"]
    hits = await knowledge.search("lights", "lighthouses", owner_id=None, k=100, sources="a/*")
    assert {hit.source for hit in hits} == {"a/long.md"}
    assert all(hit.text.startswith("# Lights") for hit in hits)  # the heading, in every chunk
    assert all(len(hit.text) <= 300 + len("# Lights\n") for hit in hits)


async def test_bad_requests_store_nothing(knowledge: Knowledge) -> None:
    await knowledge.create("mine", owner_id="user_a")
    with pytest.raises(Conflict):
        await knowledge.create("mine", owner_id="user_a")
    await knowledge.create("mine", owner_id="user_b")  # another owner's name space
    with pytest.raises(NotFound):
        await knowledge.get("mine", owner_id="user_c")
    theirs = await knowledge.get("mine", owner_id="user_b")
    with pytest.raises(NotFound):
        await knowledge.search(theirs.id, "anything", owner_id="user_a")
    with pytest.raises(NotFound):
        await knowledge.add(theirs.id, ["*.md"], owner_id="user_a")
    for glob in ("../outside/*.md", "/etc/*", "docs/../../x"):
        with pytest.raises(GlobInvalid, match="outside the workspace"):
            await knowledge.add("mine", [glob], owner_id="user_a")
    with pytest.raises(InputsInvalid, match="chunk_overlap"):
        await knowledge.create("x", owner_id=None, chunk_size=200, chunk_overlap=150)
    with pytest.raises(InputsInvalid, match="has no embedding model"):
        await knowledge.search("mine", "q", owner_id="user_a", mode="vector")
    assert await knowledge.store.latest_job(theirs.id) is None
    assert [c.name for c in await knowledge.store.collections(owner_id="user_a")] == ["mine"]


async def test_a_job_left_running_is_resumed(database: Database, tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    (workspace / "docs").mkdir(parents=True)
    (workspace / "docs" / "a.md").write_text("Quasars are bright.\n")
    first = Knowledge(database, None, workspace=workspace, lease_timeout_s=0.2)
    collection = await first.create("docs", owner_id=None)
    # A process that stopped after storing its job: no one drives it.
    job = await first.store.create_job(collection.id, ["docs/*.md"], "gone:1:x")
    await first.close()
    second = Knowledge(database, None, workspace=workspace, lease_timeout_s=0.2)
    try:
        assert await second.open() == []  # updated just now: its process may be alive
        await _aged(second, job.id)
        assert await second.open() == [job.id]
        done = await second.wait(job.id)
        assert (done.status, done.progress["done"]) == ("done", 1)
        assert await second.search("docs", "quasars", owner_id=None)
    finally:
        await second.close()


async def _aged(knowledge: Knowledge, job_id: str) -> None:
    import asyncio

    await asyncio.sleep(0.3)
    assert (await knowledge.store.job(job_id)).status == "running"


async def test_the_agent_tool_searches_the_owners_collections(knowledge: Knowledge) -> None:
    from engine.knowledge.slot import KnowledgeSlot
    from nodes.tools import ToolError
    from nodes.tools.knowledge_search import KnowledgeSearch

    folder = knowledge.workspace / "users" / "user_a" / "docs"
    folder.mkdir(parents=True)
    (folder / "otters.md").write_text("Sea otters hold hands while they sleep.\n")
    await knowledge.create("facts", owner_id="user_a")
    job = await knowledge.add("facts", ["docs/*.md"], owner_id="user_a")
    assert (await knowledge.wait(job.id)).progress["done"] == 1
    slot = KnowledgeSlot()
    tool = KnowledgeSearch(slot)
    args = {"collection": "facts", "query": "How do otters sleep?", "k": 2}
    with pytest.raises(ToolError, match="not available"):
        await tool.call_for(args, idempotency_key="r:n:1", owner_id="user_a")
    slot.attach(knowledge)
    found = await tool.call_for(args, idempotency_key="r:n:1", owner_id="user_a")
    assert found == [
        {"text": "Sea otters hold hands while they sleep.", "source": "docs/otters.md", "chunk": 0}
    ]
    with pytest.raises(ToolError, match="collection facts not found"):
        await tool.call_for(args, idempotency_key="r:n:1", owner_id="user_b")
