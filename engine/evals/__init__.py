"""Datasets and evaluations (SPEC §17): a workflow's variants run over rows of inputs and
scored against what the rows expect."""
