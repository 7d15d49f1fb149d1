"""Controller-side tracking: confirm a checkpoint on the Hugging Face Hub before the checkpoint on
the target is cleaned up (``hub``), and sync a run's offline wandb runs from its target
(``wandb_sync``: a pure command builder and output parser). The job side is ``reconciler.runtime``.
"""
