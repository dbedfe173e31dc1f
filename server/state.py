"""The engine the API drives: database, run service, models, live events. The app's lifespan
creates it on start-up (recovering runs a previous process left behind) and closes it on
shutdown; controllers get it by dependency injection."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from litestar import Litestar
from litestar.datastructures import State

from engine.distributed.launch import Queued
from engine.documents.document import Workflow, from_builtins
from engine.knowledge.service import Knowledge
from engine.models import ModelRegistry, ModelService
from engine.nodes.registry import NodeRegistry
from engine.records import WorkflowRecord
from engine.runs.service import RunService
from engine.storage.accounts import Accounts
from engine.storage.batches import BatchStore
from engine.storage.conversations import ConversationStore
from engine.storage.database import Database
from engine.storage.evaluations import EvaluationStore
from engine.storage.schedules import ScheduleStore
from engine.storage.webhooks import HookStore
from engine.storage.workflows import WorkflowQueries
from nodes import knowledge_slot
from nodes.tool import tools_of
from nodes.tools import ToolRegistry
from nodes.tools.mcp import McpServers
from nodes.tools.mcp_config import CONFIG_VARIABLE
from server.auth import Gate, is_loopback
from server.batches import Batches
from server.config import ServerConfig
from server.evaluations import Evaluations
from server.live import LiveRuns
from server.plugins import installed_registry
from server.schedules import Scheduler

log = structlog.get_logger("nodeloom.server")
WAITS_CHECKED_S = 1.0  # how often waits past their timeout are ended
DOCUMENT_CACHE = 256  # decoded workflow versions kept for starting runs


@dataclass(eq=False)
class Engine:
    config: ServerConfig
    database: Database
    registry: NodeRegistry
    models: ModelService | None
    runs: RunService
    workflows: WorkflowQueries
    live: LiveRuns
    accounts: Accounts
    gate: Gate
    # The tools `tool` and `agent` nodes call; the MCP servers of mcp.toml among them, and
    # those that could not be reached at start-up (with why).
    tools: ToolRegistry | None = None
    mcp_servers: McpServers | None = None
    mcp_unreachable: dict[str, str] = field(default_factory=dict)
    batches: Batches = field(init=False)
    evaluations: Evaluations = field(init=False)
    knowledge: Knowledge = field(init=False)
    hooks: HookStore = field(init=False)
    schedules: ScheduleStore = field(init=False)
    conversations: ConversationStore = field(init=False)
    _documents: OrderedDict[tuple[str, int], tuple[WorkflowRecord, Workflow]] = field(
        default_factory=OrderedDict
    )

    async def current_workflow(
        self, workflow_id: str, *, owner_id: str | None
    ) -> tuple[WorkflowRecord, Workflow]:
        """The workflow's current version, decoded: one light query for the version number, the
        document itself from a small cache of versions (a version never changes once saved)."""
        version = await self.workflows.current_version(workflow_id, owner_id=owner_id)
        key = (workflow_id, version)
        cached = self._documents.get(key)
        if cached is None:
            record = await self.workflows.get_workflow(workflow_id, version, owner_id=owner_id)
            cached = self._documents[key] = (record, from_builtins(record.document))
            while len(self._documents) > DOCUMENT_CACHE:
                self._documents.popitem(last=False)
        else:
            self._documents.move_to_end(key)
        return cached


@contextlib.asynccontextmanager
async def open_engine(
    config: ServerConfig, registry: NodeRegistry | None = None
) -> AsyncIterator[Engine]:
    models = None
    if config.models_dir is not None:
        models = ModelService(
            ModelRegistry.load(config.models_dir),
            budget=config.model_memory_budget,
            environ=os.environ,  # the API keys the registry names
        )
    database = await Database.connect(config.database_url)
    live = LiveRuns()
    launcher = None
    if config.execution == "workers":
        launcher = Queued(database, workspace=config.workspace, models=models)
    runs = RunService(
        database,
        registry or installed_registry(),
        workspace=config.workspace,
        lease_timeout_s=config.lease_timeout_s,
        max_items=config.map_max_items,
        models=models,
        launcher=launcher,
        observers=[live],
    )
    accounts = Accounts(database)
    engine = Engine(
        config=config,
        database=database,
        registry=runs.registry,
        models=models,
        runs=runs,
        workflows=runs.store,
        live=live,
        accounts=accounts,
        gate=Gate(accounts, loopback=is_loopback(config.host)),
    )
    engine.batches = Batches(
        runs,
        BatchStore(database),
        parallelism=config.batch_parallelism,
        lease_timeout_s=config.lease_timeout_s,
    )
    engine.hooks = HookStore(database)
    engine.evaluations = Evaluations(
        runs, EvaluationStore(database), lease_timeout_s=config.lease_timeout_s
    )
    engine.schedules = ScheduleStore(database)
    engine.conversations = ConversationStore(database)
    engine.knowledge = attach_knowledge(
        runs, Knowledge(database, models, workspace=config.workspace,
                        lease_timeout_s=config.lease_timeout_s)
    )  # fmt: skip
    try:
        engine.tools = tools_of(runs.registry)
        if engine.tools is not None:
            environ: Mapping[str, str] = os.environ
            if config.mcp_config is not None:
                environ = {**os.environ, CONFIG_VARIABLE: str(config.mcp_config)}
            engine.mcp_servers = McpServers.from_environ(environ)
            if engine.mcp_servers is not None:
                engine.mcp_unreachable = await engine.mcp_servers.start(engine.tools)
        interrupted = await runs.recover()
        if interrupted:
            log.warning("runs interrupted by a previous process", runs=interrupted)
        taken = await engine.batches.open()
        if taken:
            log.warning("batches taken over from a previous process", batches=taken)
        resumed = await engine.evaluations.open()
        if resumed:
            log.warning("evaluations taken over from a previous process", evaluations=resumed)
        scheduler = Scheduler(
            engine.schedules,
            runs,
            lambda workflow_id, owner_id: engine.current_workflow(workflow_id, owner_id=owner_id),
        )
        async with engine.knowledge.running(), scheduler.running(), expiring_waits(runs):
            yield engine
    finally:
        engine.batches.stop()  # no new item runs; those executing are left to resume
        await engine.evaluations.close()
        await runs.close()
        await engine.batches.close()
        if engine.mcp_servers is not None:
            await engine.mcp_servers.close()
        if models is not None:
            await models.close()
        await database.close()


def attach_knowledge(runs: RunService, knowledge: Knowledge) -> Knowledge:
    """Make ``knowledge`` the collections the runs' `retrieve` nodes search and are checked
    against."""
    slot = knowledge_slot(runs.registry)
    if slot is not None:
        slot.attach(knowledge)
    runs.knowledge = knowledge
    return knowledge


@contextlib.asynccontextmanager
async def expiring_waits(runs: RunService, every_s: float = WAITS_CHECKED_S) -> AsyncIterator[None]:
    """Every ``every_s``, end the waits for an answer whose time is up (`timeout_s`), whichever
    server's runs they are: each is ended once."""

    async def sweep() -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await runs.expire_waiting()
            except Exception:
                log.exception("ending waits whose time is up failed")

    task = asyncio.create_task(sweep())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def engine_lifespan(
    config: ServerConfig, registry: NodeRegistry | None
) -> contextlib.AbstractAsyncContextManager[None] | Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        from server.mcp import McpEndpoint  # noqa: PLC0415 - server.mcp imports this module

        async with open_engine(config, registry) as engine, McpEndpoint(engine).running() as mcp:
            app.state.engine = engine
            app.state.mcp = mcp
            yield

    return lifespan


def get_engine(state: State) -> Engine:
    """The `engine` dependency."""
    engine: Engine = state.engine
    return engine
