"""Durable storage of workflows, runs, node results and events (SQLAlchemy 2, async)."""
