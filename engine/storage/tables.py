"""The tables, as SQLAlchemy 2 declarative models. Schema changes go through Alembic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "NAMING",
    "AgentRow",
    "ApiTokenRow",
    "Base",
    "BatchRow",
    "BatchRunRow",
    "BlobRow",
    "ChunkRow",
    "CollectionRow",
    "CompiledPlanRow",
    "ConversationRow",
    "DatasetRow",
    "EvaluationRow",
    "EventRow",
    "IndexJobRow",
    "KnowledgeDocumentRow",
    "MessageRow",
    "NodeResultRow",
    "ReusedResultsRow",
    "RunRow",
    "ScheduleRow",
    "Stamp",
    "UserRow",
    "ViewStateRow",
    "WebhookRow",
    "WorkflowRow",
    "WorkflowVersionRow",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Stamp(TypeDecorator[datetime]):
    """A UTC timestamp; SQLite hands back naive datetimes, so they are made aware again."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, datetime: Stamp()}  # noqa: RUF012


class WorkflowRow(Base):
    __tablename__ = "workflows"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner_id: Mapped[str | None] = mapped_column(String(40), index=True)
    name: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WorkflowVersionRow(Base):
    __tablename__ = "workflow_versions"

    workflow_id: Mapped[str] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    document: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workflow_id: Mapped[str | None] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    workflow_version: Mapped[int | None]
    workflow_name: Mapped[str] = mapped_column(Text)
    owner_id: Mapped[str | None] = mapped_column(String(40), index=True)
    parent_run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    root_run_id: Mapped[str] = mapped_column(String(40), index=True)
    from_node: Mapped[str | None] = mapped_column(String(64))
    changes: Mapped[dict[str, Any]]
    # What started the run (SPEC §16): `api`, `manual`, `batch:<id>`, `mcp`, ...
    trigger: Mapped[str] = mapped_column(String(80), default="api", server_default="api")
    # The run this one replays (SPEC §17), if it is a replay.
    replay_of: Mapped[str | None] = mapped_column(String(40))
    # What the replay does when a recordable node's key is not the recorded one: fail | call.
    replay_on_miss: Mapped[str | None] = mapped_column(String(8))
    # When the run was pinned as a test case of its workflow (SPEC §17); None: not pinned.
    pinned_at: Mapped[datetime | None] = mapped_column(index=True)
    # The exact document the run ran: a stored document (`blobs`, by digest; a workflow's runs
    # share it) with these param overrides applied ({node: {param: value}}, a rerun's own and
    # its ancestors'). `Store.snapshot` puts them together.
    snapshot_blob: Mapped[str] = mapped_column(String(64))
    snapshot_overrides: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    inputs: Mapped[dict[str, Any]]
    outputs: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Which process executes the run and when it last said so: how crashes are detected.
    owner_process: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None]
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    # What a rerun of the run may take over, as one JSON value written with the run's end
    # (`engine.storage.priors.summary`): None until it finished, while it goes on again, and
    # for runs ended elsewhere (by workers). Never loaded with the row.
    priors: Mapped[str | None] = mapped_column(Text, deferred=True)


class ReusedResultsRow(Base):
    """Nodes a run took over from an earlier run without a result row of its own: that run's
    node_results rows hold them. One row per run taken from."""

    __tablename__ = "reused_results"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    origin_run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    nodes: Mapped[list[str]] = mapped_column(JSON)


class NodeResultRow(Base):
    __tablename__ = "node_results"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    # A node's id, or for a node inside a body its path (`m[3]/s/llm`).
    node_id: Mapped[str] = mapped_column(String(1024), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    reason_code: Mapped[str | None] = mapped_column(String(32))
    cache_key: Mapped[str | None] = mapped_column(String(64))
    # Small outputs live inline; large ones in `blobs`, by the digest of their JSON.
    output: Mapped[dict[str, Any] | None]
    output_blob: Mapped[str | None] = mapped_column(ForeignKey("blobs.digest"))
    digests: Mapped[dict[str, Any] | None]
    origin_run_id: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    duration_ms: Mapped[float | None] = mapped_column(Float)
    usage: Mapped[dict[str, Any] | None]
    progress: Mapped[dict[str, Any] | None]  # a body node's: {"done", "failed", "total"}


class BlobRow(Base):
    __tablename__ = "blobs"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[str] = mapped_column(Text)


class CompiledPlanRow(Base):
    """A stored document's compiled plan (engine/documents/stored.py), by `plan_key`: made once
    per document, its overrides and the node types compiling it, whatever process needs it."""

    __tablename__ = "compiled_plans"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class EventRow(Base):
    __tablename__ = "events"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[str] = mapped_column(Text)


class AgentRow(Base):
    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner_id: Mapped[str | None] = mapped_column(String(40), index=True)
    name: Mapped[str] = mapped_column(Text)
    config: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ViewStateRow(Base):
    __tablename__ = "view_states"

    workflow_id: Mapped[str] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), primary_key=True
    )
    data: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


Index("ix_runs_workflow_created", RunRow.workflow_id, RunRow.created_at)


class UserRow(Base):
    """Someone who may use the API; created with `nodeloom users create NAME`."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime]
    # argon2id (argon2-cffi's encoded form); None: the user signs in only with tokens.
    password_hash: Mapped[str | None] = mapped_column(String(255))


class ApiTokenRow(Base):
    """A bearer token, stored only as the SHA-256 of its text; deleting the row revokes it."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    name: Mapped[str] = mapped_column(String(128), server_default="")
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class BatchRow(Base):
    """Runs of one workflow started together, one per input set (`items`)."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner_id: Mapped[str | None] = mapped_column(String(40), index=True)
    workflow_id: Mapped[str] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    workflow_version: Mapped[int] = mapped_column(Integer)
    items: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    # `running` until every item has a finished run (then `done`), or `cancelled`. A running
    # batch is driven by the process `driver` while its heartbeat is fresh; after that, by
    # whichever server takes it over (server/batches.py).
    status: Mapped[str] = mapped_column(String(16), default="running", server_default="done")
    driver: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None]


class BatchRunRow(Base):
    """The run started for item ``index`` of a batch."""

    __tablename__ = "batch_runs"

    batch_id: Mapped[str] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)


class WebhookRow(Base):
    """A URL that starts a run of a workflow when called with a body signed with `secret`
    (HMAC-SHA256). The secret is kept as given out: checking a signature needs it."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    owner_id: Mapped[str | None] = mapped_column(String(40), index=True)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    rotated_at: Mapped[datetime | None]


class ScheduleRow(Base):
    """Runs of a workflow at the slots of a cron expression in a time zone. `next_run_at` is
    the next slot; the server that moves it on (one conditional update) starts that slot's run."""

    __tablename__ = "schedules"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    owner_id: Mapped[str | None] = mapped_column(String(40), index=True)
    cron: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64))
    inputs: Mapped[dict[str, Any]]
    catch_up: Mapped[str] = mapped_column(String(8))
    next_run_at: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime]
    last_run_at: Mapped[datetime | None]
    last_run_id: Mapped[str | None] = mapped_column(String(40))


class DatasetRow(Base):
    """Rows of inputs, each with the outputs expected of them (SPEC §17)."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner_id: Mapped[str | None] = mapped_column(String(40), index=True)
    name: Mapped[str] = mapped_column(Text)
    rows: Mapped[list[Any]] = mapped_column(JSON)  # [{"inputs": {…}, "expected": {…}}]
    created_at: Mapped[datetime]


class EvaluationRow(Base):
    """A workflow's variants run over a dataset and scored (SPEC §17): what was asked
    (``spec``), and the report as it stands (``report``, final once ``status`` is `done`)."""

    __tablename__ = "evaluations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner_id: Mapped[str | None] = mapped_column(String(40), index=True)
    workflow_id: Mapped[str] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    spec: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))  # running, done, failed, interrupted…
    report: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    # A running evaluation is driven by the process `driver` while its heartbeat is fresh;
    # after that, by whichever server takes it over.
    driver: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None]


class ConversationRow(Base):
    """A conversation with a target (`model:<name>`, `agent:<id>`, `workflow:<id>`, SPEC §13).
    `message_count` numbers its messages (`MessageRow.seq`), in the order they were stored."""

    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner_id: Mapped[str | None] = mapped_column(String(40), index=True)
    target: Mapped[str] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime] = mapped_column(index=True)


class MessageRow(Base):
    """One message of a conversation. The messages form a tree: the path from a message up to
    its root (`parent_id` None) is the history it was written after."""

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("conversation_id", "seq"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))  # user, assistant
    content: Mapped[str] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String(40))  # the run that answered
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]


class CollectionRow(Base):
    """A collection of workspace documents, chunked and indexed for search (SPEC §14).
    ``version`` goes up with every change of its index."""

    __tablename__ = "collections"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner_id: Mapped[str | None] = mapped_column(String(40), index=True)
    name: Mapped[str] = mapped_column(Text)
    embedding_model: Mapped[str | None] = mapped_column(Text)
    dimensions: Mapped[int | None]  # of the embedding model's vectors
    chunk_size: Mapped[int]
    chunk_overlap: Mapped[int]
    version: Mapped[int]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class KnowledgeDocumentRow(Base):
    """One workspace file of a collection: the digest of the bytes indexed, or why it failed."""

    __tablename__ = "knowledge_documents"
    __table_args__ = (UniqueConstraint("collection_id", "source"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    collection_id: Mapped[str] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(Text)  # the path relative to the workspace
    digest: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # indexed, failed
    error: Mapped[str | None] = mapped_column(Text)
    chunks: Mapped[int]
    indexed_at: Mapped[datetime]


class ChunkRow(Base):
    """A piece of a document's text. The keyword index is the database's own: an FTS5 table
    over ``text`` on SQLite, a generated ``tsvector`` column with a GIN index on PostgreSQL (both
    made by migration 0020, outside these models). ``embedding`` holds float32 bytes."""

    __tablename__ = "knowledge_chunks"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    collection_id: Mapped[str] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), index=True
    )
    document_id: Mapped[str] = mapped_column(
        ForeignKey("knowledge_documents.id", ondelete="CASCADE"), index=True
    )
    chunk: Mapped[int]  # its position in the document, from 0
    text: Mapped[str] = mapped_column(Text)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)


class IndexJobRow(Base):
    """Adding files to a collection, done in the background: the globs asked for and the
    progress so far. A job whose process stopped (no update for the lease timeout) is resumed
    by the next server to start: unchanged files are not indexed again."""

    __tablename__ = "knowledge_jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    collection_id: Mapped[str] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), index=True
    )
    paths: Mapped[list[Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)  # running, done, failed
    progress: Mapped[dict[str, Any]]
    driver: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
