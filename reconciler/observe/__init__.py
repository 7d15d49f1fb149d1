"""Observe stage: what each target's probe is asked for (``request``: the runs to detail, the batch
jobs to query, from the recorded and desired state) and the probes themselves (``observer``: one
per target, concurrently, each under a time limit; a target that does not answer is unreachable,
never "its runs are gone"). The probe script and the parsers of its answer are the backends'
(``backends.probe``, ``backends.gpus``, the scheduler adapters): the transports carry them."""
