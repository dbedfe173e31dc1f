"""Workflow documents: their types, decoding and canonical form, digests, validation issues, the
compiled `Plan` (graph building and validation) and a run's inputs checked against it."""
