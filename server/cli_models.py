"""``nodeloom models``: the model registry with each model's availability."""

from __future__ import annotations

import argparse
import os
import sys

import msgspec
from rich.console import Console
from rich.table import Table

from engine.models import ModelService
from engine.models.memory import format_size
from engine.nodes.registry import NodeRegistry

COLUMNS = ("model", "provider", "status", "memory", "where / why")


def models(args: argparse.Namespace, registry: NodeRegistry) -> int:
    service = ModelService.from_env(os.environ)
    statuses = service.status()
    if args.json:
        payload = {
            "models_dir": str(service.registry.directory),
            "memory_budget": service.budget,
            "models": statuses,
        }
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(payload), indent=2).decode())
        sys.stdout.write("\n")
        return 0
    rows = [
        (
            status.name,
            status.provider,
            "available" if status.available else "unavailable",
            format_size(status.memory) if status.memory is not None else "-",
            status.reason
            or " ".join(filter(None, (status.location, status.note and f"({status.note})"))),
        )
        for status in statuses
    ]
    console = Console(highlight=False)
    if not console.is_terminal:  # for scripts: tab-separated, nothing cut short
        for row in [COLUMNS, *rows]:
            print("\t".join(row))
        return 0
    table = Table(box=None, pad_edge=False)
    for column in COLUMNS:
        table.add_column(column, no_wrap=column != COLUMNS[-1])
    for row in rows:
        style = "green" if row[2] == "available" else "red"
        table.add_row(row[0], row[1], f"[{style}]{row[2]}[/]", row[3], row[4])
    console.print(table if rows else "no models in the registry")
    console.print(
        f"models folder {service.registry.directory}, memory budget {format_size(service.budget)}",
        style="dim",
    )
    return 0
