"""Meta-training levers for a STAR that stays stable past its horizon (issue 26).

Each lever is a ``stability meta-train`` run on ``digits_mlp`` (T = 1000, 3000 outer
steps, held-out selection on 8 episodes) followed by its kept theta trained on the
evaluation's held-out seeds 0, 1, 2 (:func:`stability.lopt.anatomy.update_anatomy`)
to 1x, 3x, 10x and 30x T, recording the training-split loss, whether it rose above
its initial value, the blackbox / nominal ratio and the parameter norm. Losses
are geometric means over the 3 seeds (a float32 loss of 0, logits so large that
the softmax saturates, counts as 1e-12); ``worst_seed_30k`` is the largest;
``param_growth`` the median of ``|p|`` at 30T over ``|p|`` at T. Runs are
resumable: a finished run or anatomy is kept, a killed one resumes from its
checkpoint::

    python benchmarks/bench_levers.py --runs-dir runs/levers            # all
    python benchmarks/bench_levers.py --runs-dir runs/levers --only s6_bound1
    python benchmarks/bench_levers.py --runs-dir runs/levers --table    # no runs

Under ``--table`` it only reads what the runs left and prints one row per run and a
summary per recipe (median and spread over meta-seeds); ``--json FILE`` writes them.
"""

import argparse
import json
import pathlib
import shlex
import subprocess
import sys

import numpy as np

CHECKPOINTS = (1000, 3000, 10000, 30000)
# name -> (recipe, meta-train arguments); the seed is part of the arguments
RUNS = {
    "s0_base": ("paper", []),
    "b1_base_seed1": ("paper", ["--seed", "1"]),
    "b2_base_seed2": ("paper", ["--seed", "2"]),
    "s1_rh": (
        "random horizons 100-10,000",
        ["--horizon", "10000", "--horizon-min", "100"],
    ),
    "s2_pen1": ("stability penalty 1", ["--blackbox-penalty", "1"]),
    "s3_evalh": ("keep-best at 10T", ["--eval-horizon", "10000"]),
    "s6_bound1": ("blackbox bounded, c = 1", ["--blackbox-bound", "1"]),
    "f1_bound1_seed1": (
        "blackbox bounded, c = 1",
        ["--blackbox-bound", "1", "--seed", "1"],
    ),
    "f2_bound1_seed2": (
        "blackbox bounded, c = 1",
        ["--blackbox-bound", "1", "--seed", "2"],
    ),
    # screens of the bounded recipe (the meta-train default since c = 1 won)
    "n01_bound": ("bounded, nominal step 0.01", ["--nominal-stepsize", "0.01"]),
    "w0_bound": ("bounded, weight decay 0", ["--weight-decay", "0"]),
    "w05_bound": ("bounded, weight decay 0.5", ["--weight-decay", "0.5"]),
    "w1_bound": ("bounded, weight decay 1", ["--weight-decay", "1.0"]),
    "w1_bound_seed1": (
        "bounded, weight decay 1",
        ["--weight-decay", "1.0", "--seed", "1"],
    ),
    "w1_bound_seed2": (
        "bounded, weight decay 1",
        ["--weight-decay", "1.0", "--seed", "2"],
    ),
}
COMMON = ["--steps", "3000", "--eval-seeds", "8", "--no-progress"]


def meta_train(run_dir: pathlib.Path, args: list) -> None:
    if (run_dir / "best_theta.npz").exists():
        return
    resume = ["--resume"] if (run_dir / "checkpoint.npz").exists() else []
    cmd = ["stability", "meta-train", "--out", str(run_dir), *COMMON, *args, *resume]
    print("$", shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def anatomy(run_dir: pathlib.Path) -> None:
    out = run_dir / "anatomy.npz"
    if out.exists():
        return
    from stability.lopt import io
    from stability.lopt.anatomy import star_options, update_anatomy

    path = run_dir / "best_theta.npz"
    rec = update_anatomy(
        io._read_theta(path),
        "digits_mlp",
        checkpoints=list(CHECKPOINTS),
        seeds=[0, 1, 2],
        **star_options(io.load_metadata(path)),
    )
    skip = ("decays", "config")
    np.savez(
        out, **{k: np.asarray(v) for k, v in rec._asdict().items() if k not in skip}
    )


def row(name: str, run_dir: pathlib.Path) -> dict | None:
    if not (run_dir / "anatomy.npz").exists() or not (run_dir / "eval.jsonl").exists():
        return None
    evals = [json.loads(line) for line in open(run_dir / "eval.jsonl") if line.strip()]
    kept = [e for e in evals if e.get("best")]
    with np.load(run_dir / "anatomy.npz") as z:
        loss, diverged = z["loss"], z["diverged"]
        steps, ratio = z["steps"], z["ratio"]
        pnorm = z["param_norm"] if "param_norm" in z.files else None
    out = {
        "run": name,
        "recipe": RUNS[name][0],
        "kept_step": kept[-1]["step"] if kept else None,
        "held_out_at_T": kept[-1]["train_loss"] if kept else None,
        "diverged_seeds": int(diverged.any(axis=1).sum()),
        "worst_seed_30k": float(np.max(loss[:, -1])),
        "param_growth": None
        if pnorm is None
        else float(np.median(pnorm[:, -1] / pnorm[:, 0])),
    }
    for i, s in enumerate(steps):
        geo = float(np.exp(np.mean(np.log(np.maximum(loss[:, i], 1e-12)))))
        out[f"loss_{s // 1000}k"] = geo
        out[f"ratio_{s // 1000}k"] = float(np.median(ratio[:, i]))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs-dir", required=True, help="one folder per run")
    p.add_argument("--only", nargs="*", choices=sorted(RUNS), help="runs to make")
    p.add_argument("--table", action="store_true", help="read the runs, run nothing")
    p.add_argument("--json", help="write the rows and summaries here")
    args = p.parse_args(argv)
    root = pathlib.Path(args.runs_dir)
    names = args.only or list(RUNS)
    if not args.table:
        for name in names:
            meta_train(root / name, RUNS[name][1])
            anatomy(root / name)
    rows = [r for r in (row(n, root / n) for n in names) if r is not None]
    keys = ["held_out_at_T"] + [f"loss_{c // 1000}k" for c in CHECKPOINTS]
    keys += ["worst_seed_30k", "param_growth"]
    print("| run | recipe | kept step | " + " | ".join(keys) + " | diverged seeds |")
    print("|---" * (len(keys) + 4) + "|")
    for r in rows:
        vals = " | ".join("-" if r[k] is None else f"{r[k]:.2g}" for k in keys)
        print(
            f"| {r['run']} | {r['recipe']} | {r['kept_step']} | {vals} | "
            f"{r['diverged_seeds']}/3 |"
        )
    summary = {}
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        group = [r for r in rows if r["recipe"] == recipe]
        summary[recipe] = {
            "meta_seeds": len(group),
            **{
                k: {
                    "median": float(np.median([r[k] for r in group])),
                    "min": float(np.min([r[k] for r in group])),
                    "max": float(np.max([r[k] for r in group])),
                }
                for k in keys
                if all(r[k] is not None for r in group)
            },
            "diverged_seeds": sum(r["diverged_seeds"] for r in group),
        }
    print(json.dumps(summary, indent=1))
    if args.json:
        pathlib.Path(args.json).write_text(
            json.dumps({"rows": rows, "summary": summary}, indent=1) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
