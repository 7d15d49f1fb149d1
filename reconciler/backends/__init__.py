"""Targets' machinery: transports (how commands and files reach a target) and runners (how runs are
started, observed and stopped there), with the scheduler adapters as pure builders and parsers.

- Interfaces: ``base`` (``Transport``, ``Completed``), ``scheduler`` (what a batch adapter is).
- Transports: ``local`` (this machine), ``ssh`` over ``sshlink`` (one connection, reopened on
  demand) and ``sshconfig`` (options to a connection; its failures to ours); ``capped`` bounds
  every read from a target. Only these three SSH modules use asyncssh (through ``asyncssh_quiet``).
- Runners: ``shell`` (detached processes: ``local`` and ``ssh`` targets), ``batch`` (SLURM, PBS,
  ``command`` templates).
- Pure builders: ``wrapper`` (the run wrapper and launch), ``scripts`` (ship code, kill, receive
  a file), ``envcheck``, ``probe`` (the request; the probe itself is ``resources/probe.py``, sent
  to targets as one file), ``slurm``, ``pbs``, ``cmdtemplate``.
- Pure parsers: ``probe`` (the answer), ``gpus`` (``nvidia-smi`` CSV), ``slurm_output``, and the
  ``parse_*`` methods of ``pbs`` and ``cmdtemplate``.

No I/O outside the transports and runners; every command goes through a ``Transport``.
"""
