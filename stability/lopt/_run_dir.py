"""The files of a meta-training run: checkpoint, logs and thetas in its directory.

``checkpoint.npz`` (every leaf of the training state, the best theta so far and a
JSON host record), ``log.jsonl`` and ``log.csv`` (one row per outer step),
``eval.jsonl`` (held-out evaluations), ``theta.npz`` and ``best_theta.npz`` with
their sidecars. Every whole-file write is atomic; the logs are appended to row by
row, and a resumed run first rewrites them without the rows written after its
checkpoint (a torn last line is dropped).
"""

import contextlib
import csv
import json
import pathlib
import subprocess

import jax
import numpy as np

from stability.lopt.io import atomic_write, flatten_theta, save_theta, unflatten_theta

CHECKPOINT_FORMAT = 1
# Fields that may change between a run and its resumption.
RESUMABLE_CHANGES = ("steps",)
# fields added after checkpoints were first written, with the value those implied
LEGACY = {
    "select": "objective",
    "horizon_min": None,
    "final_weight": 0.0,
    "blackbox_penalty": 0.0,
    "eval_horizon": None,
    "blackbox_bound": None,
}
LOG_FIELDS = (
    "step",
    "meta_loss",
    "grad_norm",
    "skipped",
    "skipped_total",
    "diverged",
    "diverged_total",
    "episodes_total",
    "theta_norm",
    "wall_s",
)


class RunDir:
    """The paths of a run's files in ``out_dir`` (created), and their writers."""

    def __init__(self, out_dir) -> None:
        self.out = pathlib.Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.checkpoint = self.out / "checkpoint.npz"
        self.log = self.out / "log.jsonl"
        self.csv = self.out / "log.csv"
        self.eval = self.out / "eval.jsonl"

    def saved_host(self) -> dict:
        """The checkpoint's host record (step, best score, configurations)."""
        with np.load(self.checkpoint) as f:
            return json.loads(str(f["host"]))

    def start_logs(self) -> None:
        """Empty logs for a fresh run."""
        for path in (self.log, self.eval):
            write_jsonl(path, [])
        write_csv(self.csv, [])

    def rewind_logs(self, start: int, steps: int) -> None:
        """The logs as they stood at the checkpoint's step ``start``; the closing
        evaluation of a shorter run goes when the run goes on past it."""
        rows = read_jsonl(self.log, start)
        write_jsonl(self.log, rows)
        write_csv(self.csv, rows)
        evals = read_jsonl(self.eval, start)
        if start < steps:
            evals = [r for r in evals if not r.get("final")]
        write_jsonl(self.eval, evals)

    def append_eval(self, row: dict) -> None:
        with self.eval.open("a") as f:
            f.write(json.dumps(row) + "\n")

    @contextlib.contextmanager
    def step_log(self):
        """A function writing one outer step's row to ``log.jsonl`` and
        ``log.csv``, both flushed."""
        with self.log.open("a") as log_f, self.csv.open("a", newline="") as csv_f:
            writer = csv.DictWriter(csv_f, fieldnames=LOG_FIELDS, extrasaction="ignore")

            def write(row: dict) -> None:
                log_f.write(json.dumps(row) + "\n")
                log_f.flush()
                writer.writerow(row)
                csv_f.flush()

            yield write

    def save_thetas(self, theta, best_theta, metadata: dict) -> None:
        """``theta.npz`` and ``best_theta.npz`` with their sidecars."""
        save_theta(self.out / "theta.npz", theta, {**metadata, "which": "final"})
        best = {**metadata, "which": "best"}
        save_theta(self.out / "best_theta.npz", best_theta, best)


def save_checkpoint(path, state, host: dict, best_theta) -> None:
    """Every leaf of ``state``, the best theta (if any) and the host record."""
    leaves = jax.tree.leaves(jax.device_get(state))
    arrays = {f"state/{i:04d}": np.asarray(x) for i, x in enumerate(leaves)}
    if best_theta is not None:
        arrays.update(
            {
                f"best/{k}": v
                for k, v in flatten_theta(jax.device_get(best_theta)).items()
            }
        )
    arrays["host"] = np.asarray(json.dumps(host))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path, program):
    """``(state on program's devices, host record, best theta or None)``; each
    array is checked against the state ``program`` initialises."""
    with np.load(path) as f:
        host = json.loads(str(f["host"]))
        template = jax.eval_shape(program._init_state)
        t_leaves, treedef = jax.tree.flatten(template)
        names = sorted(k for k in f.files if k.startswith("state/"))
        if len(names) != len(t_leaves):
            raise ValueError(
                f"checkpoint: {path} holds {len(names)} arrays, the configuration "
                f"needs {len(t_leaves)}"
            )
        leaves = []
        for name, t in zip(names, t_leaves, strict=True):
            x = np.asarray(f[name])
            if x.shape != t.shape or x.dtype != t.dtype:
                raise ValueError(
                    f"checkpoint: {name} is {x.dtype}{x.shape}, expected "
                    f"{t.dtype}{t.shape}"
                )
            leaves.append(x)
        best = {k[5:]: np.asarray(f[k]) for k in f.files if k.startswith("best/")}
    state = jax.device_put(treedef.unflatten(leaves), program.state_sharding)
    return state, host, (unflatten_theta(best) if best else None)


def read_jsonl(path: pathlib.Path, max_step: int) -> list[dict]:
    """Records of a JSONL log up to ``max_step``; a torn last line is dropped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("step", 0) <= max_step:
            rows.append(row)
    return rows


def write_jsonl(path: pathlib.Path, rows: list[dict]) -> None:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    atomic_write(path, lambda f: f.write(text), mode="w")


def write_csv(path: pathlib.Path, rows: list[dict]) -> None:
    def write(f):
        w = csv.DictWriter(f, fieldnames=LOG_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)

    atomic_write(path, write, mode="w")


def git_commit() -> str | None:
    """The commit of the source tree this module is in, if it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=pathlib.Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
