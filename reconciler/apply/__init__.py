"""Apply stage: carry out a plan's I/O actions through the targets' runners (``executor``: targets
concurrently, each target's actions in plan order, one ``ActionResult`` per action, errors
classified where they surface), collect results into the project (``collect``) and tidy finished
runs (``tidy``: checkpoints confirmed on the Hub, offline wandb runs synced)."""
