"""``stability edge``: train a task and track the edge of stability.

    stability edge --task NAME --optimizer gd|heavy_ball|adam|nominal|star
                   [--lr X] [--beta B] [--theta FILE] [--loss ce|mse]
                   --steps N --every K [--full-batch | --batch B] [--step-radius]
                   [--seed S] --out DIR

Every K steps (and at step 0 and the end) records the loss, the sharpness, the
preconditioned sharpness (adam, nominal, star), the optimizer's threshold and, with
``--step-radius``, the spectral radius of the real training step's Jacobian, one JSON
object per line in ``DIR/edge.jsonl`` (written as it goes); draws ``DIR/edge.png``
at the end. ``--lr`` defaults: gd 0.1, heavy_ball 0.01, adam 1e-3, nominal 0.03,
star the theta's own nominal step. ``--beta`` (heavy_ball's momentum, adam's b1)
defaults to 0.9. ``--theta`` (star only) defaults to the shipped
``stability/lopt/thetas/star.npz``. Without ``--full-batch`` or ``--batch`` the
task's own batch size is used. A run whose loss becomes non-finite or exceeds its
initial value stops there, keeping what it recorded. Bad arguments: one line on
stderr, exit code 2.
"""

import argparse
import json
import math
import pathlib
import sys

from stability.cli._args import nonnegative_int, positive_int, positive_number

OPTIMIZERS = ("gd", "heavy_ball", "adam", "nominal", "star")


def _decay(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``edge`` on an argparse sub-parser collection."""
    p = subparsers.add_parser(
        "edge",
        help="track the sharpness against the optimizer's threshold along training",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--task", required=True, help="a registered task name")
    p.add_argument("--optimizer", required=True, choices=OPTIMIZERS)
    p.add_argument("--lr", type=positive_number, help="learning rate (star: nominal)")
    p.add_argument("--beta", type=_decay, help="heavy_ball momentum or adam b1")
    p.add_argument("--theta", help="STAR theta (.npz), star only")
    p.add_argument("--loss", choices=("ce", "mse"), default="ce")
    p.add_argument("--steps", type=positive_int, required=True)
    p.add_argument("--every", type=positive_int, required=True)
    batch = p.add_mutually_exclusive_group()
    batch.add_argument("--full-batch", action="store_true", help="the whole split")
    batch.add_argument("--batch", type=positive_int, help="minibatch size")
    p.add_argument("--step-radius", action="store_true")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(run=run)
    return p


def _fail(message: str) -> int:
    print(f"stability edge: error: {message}", file=sys.stderr)
    return 2


def _json_number(x):
    return x if not isinstance(x, float) or math.isfinite(x) else None


def run(args) -> int:
    """Run ``stability edge``; 0 on success, 2 (one line on stderr) on bad
    arguments."""
    from stability.lopt.tasks import task_names

    if args.task not in task_names():
        return _fail(
            f"--task: unknown task {args.task!r}; known: {', '.join(task_names())}"
        )
    if args.beta is not None and args.optimizer not in ("heavy_ball", "adam"):
        return _fail(f"--beta: only heavy_ball and adam take it, not {args.optimizer}")
    if args.theta is not None:
        if args.optimizer != "star":
            return _fail(f"--theta: only star takes it, not {args.optimizer}")
        if not pathlib.Path(args.theta).is_file():
            return _fail(f"--theta: no such file {args.theta!r}")
    out = pathlib.Path(args.out)
    if out.exists() and not out.is_dir():
        return _fail(f"--out: {args.out!r} exists and is not a directory")
    try:
        return _run(args, out)
    except (ValueError, FileNotFoundError, KeyError, ImportError) as err:
        text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        return _fail(text.splitlines()[0] if text else type(err).__name__)


def _run(args, out: pathlib.Path) -> int:
    from stability.lopt.edge import track_task
    from stability.lopt.tasks import get_task

    task = get_task(args.task, batch_size=args.batch)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "edge.jsonl"
    with path.open("w") as f:

        def write(point):
            record = {k: _json_number(v) for k, v in point._asdict().items()}
            f.write(json.dumps(record) + "\n")
            f.flush()

        run_record = track_task(
            task,
            args.optimizer,
            lr=args.lr,
            beta=args.beta,
            theta=args.theta,
            loss=args.loss,
            steps=args.steps,
            every=args.every,
            batch_size=None if args.full_batch else task.batch_size,
            step_radius=args.step_radius,
            seed=args.seed,
            log=lambda line: print(line, file=sys.stderr, flush=True),
            callback=write,
        )
    _draw(run_record, out / "edge.png")
    last = run_record.checkpoints[-1]
    print(
        f"{args.optimizer} on {args.task}: {len(run_record.checkpoints)} checkpoints"
        f" to step {last.step}{' (diverged)' if last.diverged else ''}; "
        f"wrote {path} and {out / 'edge.png'}"
    )
    return 0


def _draw(record, path):
    import matplotlib.pyplot as plt

    from stability import plotting
    from stability.plotting.edge import edge, edge_loss

    with plotting.style():
        fig, axes = plotting.figure(2, 1, height=5.2)
        edge_loss(record, axes[0, 0])
        edge(record, axes[1, 0])
        axes[0, 0].set_title(
            f"{record.info['optimizer']} on {record.info['task']} "
            f"({record.info['loss']}, batch {record.info['batch']})"
        )
        fig.savefig(path, dpi=120)
        plt.close(fig)
