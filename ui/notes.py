"""Sticky notes: Markdown comments on the canvas, kept in the document's `ui` (never part of
execution)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Notes:
    """The notes of the document ``document()`` returns, changed in place."""

    def __init__(self, document: Callable[[], dict[str, Any]]) -> None:
        self.document = document

    def all(self) -> list[dict[str, Any]]:
        return list((self.document().get("ui") or {}).get("notes") or [])

    def _notes(self) -> list[dict[str, Any]]:
        document = self.document()
        notes: list[dict[str, Any]] = document.setdefault("ui", {}).setdefault("notes", [])
        return notes

    def _tidy(self) -> None:
        """No empty `ui` left in the document once its last note is gone."""
        document = self.document()
        if not (document.get("ui") or {}).get("notes"):
            (document.get("ui") or {}).pop("notes", None)
            if not document.get("ui"):
                document.pop("ui", None)

    def add(self, x: float, y: float) -> dict[str, Any]:
        taken = {note["id"] for note in self.all()}
        number = 1
        while f"note{number}" in taken:
            number += 1
        note = {"id": f"note{number}", "text": "", "x": round(x), "y": round(y)}
        self._notes().append(note)
        return note

    def edit(self, note_id: str, text: str) -> None:
        for note in self._notes():
            if note["id"] == note_id:
                note["text"] = text
        self._tidy()

    def move(self, note_id: str, position: dict[str, float]) -> None:
        for note in self._notes():
            if note["id"] == note_id:
                note["x"], note["y"] = position["x"], position["y"]
        self._tidy()

    def remove(self, note_ids: set[str]) -> None:
        document = self.document()
        if document.get("ui"):
            document["ui"]["notes"] = [n for n in self.all() if n["id"] not in note_ids]
        self._tidy()
