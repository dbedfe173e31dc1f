"""Executing a plan: the executor, a node's lifecycle (inputs, cache key, reuse, attempts), the
node states and events a run produces, and what a run takes over from earlier runs."""
