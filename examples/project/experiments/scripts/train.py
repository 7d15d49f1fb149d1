#!/usr/bin/env python3
"""Train one method on one dataset for one seed, on a CPU, with the standard library and
``reconciler.runtime`` only.

    python3 experiments/scripts/train.py --method logreg --dataset blobs --seed 0 \
        --checkpoint-dir /tmp/ckpt --resume --result-file experiments/results/logreg_blobs_s0.csv

It follows the experiment-code contract through ``reconciler.runtime``: the standard flags
``--seed --checkpoint-dir --resume --dry-run``; a JSON checkpoint after every epoch; progress and
final metrics in the ``status.json`` sidecar when the reconciler sets ``RECONCILER_RUN_DIR``; the
canonical result CSV. wandb runs only when ``WANDB_MODE`` is ``online`` or ``offline`` (default:
disabled). With ``RECONCILER_HF_REPO`` set, the checkpoint dir is uploaded to that Hub repo at the
end and deleted once the Hub lists it. The ``--fail-*`` flags make it fail the way real training
fails, for tests and demos of failure handling.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datasets
import models

from reconciler import runtime

DEFAULT_GROUP = {"logreg": "baseline", "mlp": "main"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", choices=models.METHODS, required=True)
    p.add_argument("--dataset", choices=datasets.DATASETS, required=True)
    runtime.add_standard_args(p)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.5)
    p.add_argument("--grad-clip", type=float, default=None, help="clip the gradient norm to this value")
    p.add_argument(
        "--accumulate-grad-batches", type=int, default=1, help="accepted for the OOM remediation (no effect on CPU)"
    )
    p.add_argument("--fp16", action="store_true", help="accepted for the NaN remediation (no effect on CPU)")
    p.add_argument("--exp-id", default=os.environ.get("EXP_ID"))
    p.add_argument("--group", default=os.environ.get("EXP_GROUP"))
    p.add_argument("--result-file", default=None, help="default: experiments/results/<exp_id>.csv")
    p.add_argument("--sleep", type=float, default=0.0, metavar="SECONDS", help="idle first (progress lines)")
    p.add_argument(
        "--fail-oom",
        type=int,
        nargs="?",
        const=0,
        default=None,
        metavar="MAX_BATCH",
        help="die with a CUDA OOM when --batch-size is above MAX_BATCH (default 0: always)",
    )
    p.add_argument("--fail-nan", action="store_true", help="the loss turns NaN (unless --grad-clip is set)")
    p.add_argument("--fail-import", action="store_true", help="import a module that is not installed")
    p.add_argument("--fail-exit", type=int, default=None, metavar="N", help="exit with code N")
    p.add_argument(
        "--fail-times",
        type=int,
        default=0,
        metavar="K",
        help="exit 3 on the first K runs that share --checkpoint-dir, then succeed",
    )
    args = p.parse_args(argv)
    args.exp_id = args.exp_id or f"{args.method}_{args.dataset}_s{args.seed}"
    args.group = args.group or DEFAULT_GROUP[args.method]
    args.result_file = args.result_file or f"experiments/results/{args.exp_id}.csv"
    if args.epochs < 1 or args.batch_size < 1 or args.lr <= 0:
        p.error("--epochs and --batch-size must be >= 1 and --lr > 0")
    return args


def say(*parts: object, err: bool = False) -> None:
    print(*parts, file=sys.stderr if err else sys.stdout, flush=True)


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def progress(args: argparse.Namespace, epoch: int) -> None:
    """Epochs done, in the sidecar (``<RECONCILER_RUN_DIR>/status.json``; nothing outside a run)."""
    runtime.set_progress(epoch, args.epochs, run=args.run, epoch=epoch)


def fail_import() -> None:
    import missing_pkg  # noqa: F401


def fail_oom(batch_size: int) -> None:
    """Print what PyTorch prints when a CUDA allocation fails, then exit 1."""
    here = Path(__file__).name
    say(f"allocating activations for batch size {batch_size}")
    say(
        "Traceback (most recent call last):\n"
        f'  File "{here}", line 241, in <module>\n'
        "    sys.exit(main())\n"
        f'  File "{here}", line 198, in train\n'
        "    logits = model(inputs)\n"
        '  File "torch/nn/modules/module.py", line 1501, in _call_impl\n'
        "    return forward_call(*args, **kwargs)\n"
        '  File "torch/nn/modules/linear.py", line 114, in forward\n'
        "    return F.linear(input, self.weight, self.bias)\n"
        "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB "
        "(GPU 0; 23.69 GiB total capacity; 20.31 GiB already allocated; 1.42 GiB free; "
        "21.07 GiB reserved in total by PyTorch) If reserved memory is >> allocated memory try setting "
        "max_split_size_mb to avoid fragmentation.  See documentation for Memory Management and "
        "PYTORCH_CUDA_ALLOC_CONF",
        err=True,
    )
    sys.exit(1)


def fail_nan(epoch: int) -> None:
    """Print the loss going to NaN, as a diverging run does, then exit 1."""
    say(f"epoch {epoch} step 1 loss=0.6931")
    for step in range(2, 5):
        say(f"epoch {epoch} step {step} loss=nan")
    say(f"RuntimeError: loss is nan at epoch {epoch} step 4 (try --grad-clip)", err=True)
    sys.exit(1)


def idle(args: argparse.Namespace, seconds: float) -> None:
    """Sleep in small steps, printing progress about once a second."""
    end = time.monotonic() + seconds
    last = -1
    while (left := end - time.monotonic()) > 0:
        done = int(seconds - left)
        if done != last:
            say(f"sleeping {done}/{seconds:g}s")
            progress(args, 0)
            last = done
        time.sleep(min(0.1, left))


def fail_times(args: argparse.Namespace) -> None:
    """Exit 3 on the first ``--fail-times`` runs; the count lives in the checkpoint dir."""
    if not args.checkpoint_dir:
        say("--fail-times needs --checkpoint-dir", err=True)
        sys.exit(2)
    counter = Path(args.checkpoint_dir) / f"{args.exp_id}.failures"
    count = int(counter.read_text()) if counter.exists() else 0
    if count < args.fail_times:
        atomic_write(counter, f"{count + 1}\n")
        say(f"failing on purpose ({count + 1}/{args.fail_times})", err=True)
        sys.exit(3)


def checkpoint_path(args: argparse.Namespace) -> Path | None:
    return Path(args.checkpoint_dir) / f"{args.exp_id}.ckpt.json" if args.checkpoint_dir else None


def resume_from(args: argparse.Namespace, model: models.Model) -> int:
    """Load the checkpoint into ``model``; return the number of epochs already done."""
    path = checkpoint_path(args)
    if not (args.resume and path and path.exists()):
        return 0
    ckpt = json.loads(path.read_text(encoding="utf-8"))
    if (ckpt["method"], ckpt["dataset"], ckpt["seed"]) != (args.method, args.dataset, args.seed):
        say(f"ignoring checkpoint {path}: it is for another run")
        return 0
    model.params = [float(w) for w in ckpt["params"]]
    say(f"resumed from {path} after epoch {ckpt['epoch']}")
    return int(ckpt["epoch"])


def save_checkpoint(args: argparse.Namespace, model: models.Model, epoch: int) -> None:
    path = checkpoint_path(args)
    if path is not None:
        doc = {"method": args.method, "dataset": args.dataset, "seed": args.seed, "epoch": epoch}
        doc["params"] = model.params
        atomic_write(path, json.dumps(doc) + "\n")


def train(
    args: argparse.Namespace, model: models.Model, train_split: datasets.Split, start: int, tracker: runtime.Tracker
) -> None:
    xs, ys = train_split
    last = args.epochs if args.max_steps is None else min(args.epochs, start + args.max_steps)
    for epoch in range(start + 1, last + 1):  # a step is an epoch here (--max-steps: probe-vram)
        if args.fail_nan and args.grad_clip is None:
            fail_nan(epoch)
        order = list(range(len(xs)))
        random.Random(f"shuffle:{args.seed}:{epoch}").shuffle(order)
        losses = []
        for i in range(0, len(order), args.batch_size):
            idx = order[i : i + args.batch_size]
            bx, by = [xs[j] for j in idx], [ys[j] for j in idx]
            losses.append(models.sgd_step(model, bx, by, args.lr, args.grad_clip))
        save_checkpoint(args, model, epoch)
        progress(args, epoch)
        loss = sum(losses) / len(losses)
        tracker.log({"train/loss": loss, "epoch": epoch}, step=epoch)
        say(f"epoch {epoch}/{args.epochs} loss={loss:.4f}")


def start_wandb(args: argparse.Namespace) -> runtime.Tracker:
    """wandb only when ``WANDB_MODE`` asks for it; the example needs no account by default."""
    config = {k: getattr(args, k) for k in ("method", "dataset", "seed", "group", "epochs", "batch_size", "lr")}
    return runtime.init_wandb(
        config, ["example"], mode=os.environ.get("WANDB_MODE", "disabled"), resume=args.resume, run=args.run
    )


def upload_checkpoint(args: argparse.Namespace, tracker: runtime.Tracker) -> None:
    """With ``RECONCILER_HF_REPO`` set: the checkpoint dir to ``checkpoints/<EXP_ID>`` of that repo.
    A failed upload keeps the files and says why in the sidecar; the run itself still succeeded."""
    repo = os.environ.get("RECONCILER_HF_REPO")
    if not repo or not args.checkpoint_dir or not Path(args.checkpoint_dir).is_dir():
        return
    upload = runtime.upload_checkpoint(args.checkpoint_dir, repo, run=args.run)
    if upload.ok:
        tracker.note(f"Checkpoint: {upload.url}")
        say(f"checkpoint uploaded to {upload.url} ({len(upload.files)} files); local copy removed")
    else:
        say(f"checkpoint kept in {args.checkpoint_dir}: {upload.error}", err=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.run = dataclasses.replace(runtime.current(), exp_id=args.exp_id)
    if args.fail_import:
        fail_import()
    train_split, test_split = datasets.load(args.dataset, args.seed)
    model = models.build(args.method, args.seed)
    if args.dry_run:
        model.forward(train_split[0][0])
        say(f"dry run ok: {args.method} on {args.dataset} ({len(train_split[0])} train points)")
        return 0
    say(f"{args.exp_id}: {args.method} on {args.dataset}, seed {args.seed}, group {args.group}")
    if args.sleep > 0:
        idle(args, args.sleep)
    if args.fail_oom is not None and args.batch_size > args.fail_oom:
        fail_oom(args.batch_size)
    if args.fail_exit is not None:
        say(f"exiting with code {args.fail_exit} on purpose", err=True)
        return args.fail_exit
    if args.fail_times:
        fail_times(args)
    start = resume_from(args, model)
    progress(args, start)
    tracker = start_wandb(args)
    train(args, model, train_split, start, tracker)
    accuracy, loss = models.evaluate(model, *test_split)
    metrics = {"accuracy": accuracy, "loss": loss}
    rows = runtime.result_rows(
        metrics, method=args.method, dataset=args.dataset, group=args.group, seed=args.seed, run=args.run
    )
    runtime.write_results(rows, args.result_file)
    runtime.write_final(metrics, run=args.run)
    upload_checkpoint(args, tracker)
    tracker.finish()
    say(f"done: accuracy={accuracy:.4f} loss={loss:.4f} -> {args.result_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
