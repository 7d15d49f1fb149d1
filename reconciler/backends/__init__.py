"""Transports (how commands reach a target) and schedulers (how runs are started and observed).

Only ``backends.ssh`` imports asyncssh. Scheduler adapters are pure builders and parsers; all I/O
goes through a ``Transport``.
"""
