"""``reconcile export`` and what it shares with the dashboard and the pass.

``tables`` (pure): design tables with derived cell statuses, mean ± std and the best cell per
column. ``results``: the one writer of ``experiments/results/all_results.csv`` and the reader of
per-run result files. ``guard`` (pure): which runs keep an export from being complete.
``synthesis`` (pure): ``experiments/results/pilot_synthesis.md``. ``render`` (pure): design tables
as markdown. ``notes`` (pure): ``experiments/logs/<EXP_ID>.md``. ``writer``: the files on disk.
"""
