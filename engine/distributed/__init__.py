"""Runs executed by `nodeloom worker` processes that share one PostgreSQL database.

Node executions are the unit of work: a queued run's ready nodes are jobs on a queue (pgqueuer,
behind our `Dispatcher`); any worker takes one, executes it and, in one transaction, commits its
result (if its attempt is still the current one), queues the successors that became ready and
finishes the run when the last node settles.
"""
