"""Learned optimizers on small tasks that are not in the task registry (issue 26).

The shipped thetas were meta-trained on ``digits_mlp`` and evaluated on the eleven
registry tasks; a researcher will try them on their own problem. This benchmark
builds seven such problems from data that ships with scikit-learn (or that it
generates), with architectures and losses the registry does not have, and runs
the evaluation protocol of ``stability evaluate`` on each
(:func:`stability.lopt.evaluate.evaluate`): 3 held-out seeds, horizons T and 10T
(T = 1000, the meta-training horizon), Adam's learning rate tuned per horizon on 2
separate tuning seeds, and STAR's nominal step tuned the same way (the ``_tuned``
rows). A run diverges when its training-split loss rises above its initial value
or turns non-finite.

- ``wine_tanh``: wine (13 features, 3 classes), MLP 64 tanh, batch 32;
- ``cancer_relu3``: breast cancer (30 features, 2 classes), MLP 3 x 32 ReLU;
- ``moons_deep``: two moons (noise 0.25), MLP 5 x 16 GELU;
- ``iris_softmax``: iris, softmax regression (convex);
- ``blobs_wide``: a 20-feature, 5-class ``make_classification``, MLP 512 ReLU;
- ``diabetes_mse``: diabetes regression, MLP 64 ReLU, squared error;
- ``digits_autoencoder``: digits through a 16-unit sigmoid bottleneck, squared error.

Features are standardised on the training split; 30% of each dataset is held out.

    python benchmarks/bench_beyond.py --json beyond.json          # about an hour
    python benchmarks/bench_beyond.py --only wine_tanh --extra   # STAR bounded only
"""

import argparse
import json
import math
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
from sklearn import datasets
from sklearn.model_selection import train_test_split

from stability._machine import cpu_name
from stability.lopt.evaluate import evaluate
from stability.lopt.tasks import Evaluation, Task

THETAS = pathlib.Path(__file__).resolve().parents[1] / "stability" / "lopt" / "thetas"
F32 = jnp.float32
FLOOR = 1e-12  # a float32 training loss of exactly 0 counts as this in ratios
ACTIVATIONS = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
    "sigmoid": jax.nn.sigmoid,
}


def _mlp_init(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return {
        f"layer{i}": {
            "w": jax.random.normal(k, (n, m), F32) / math.sqrt(n),
            "b": jnp.zeros((m,), F32),
        }
        for i, (k, n, m) in enumerate(zip(keys, sizes[:-1], sizes[1:], strict=True))
    }


def _mlp_apply(params, x, activation, last=None):
    n = len(params)
    for i in range(n):
        x = x @ params[f"layer{i}"]["w"] + params[f"layer{i}"]["b"]
        if i < n - 1:
            x = ACTIVATIONS[activation](x)
    return x if last is None else ACTIVATIONS[last](x)


def make_task(name, x, y, sizes, activation, *, loss, batch_size, last=None, seed=0):
    """A :class:`~stability.lopt.tasks.Task` from arrays: ``loss`` is ``"ce"``
    (``y`` integer classes) or ``"mse"`` (``y`` real targets, 1-D or 2-D)."""
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=seed)
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-8
    x_tr, x_te = ((a - mu) / sd for a in (x_tr, x_te))
    if loss == "mse" and y_tr.ndim == 1:
        ym, ys = y_tr.mean(), y_tr.std()
        y_tr, y_te = ((a - ym) / ys for a in (y_tr, y_te))
        y_tr, y_te = y_tr[:, None], y_te[:, None]
    x_tr, x_te = jnp.asarray(x_tr, F32), jnp.asarray(x_te, F32)
    ydt = jnp.int32 if loss == "ce" else F32
    y_tr, y_te = jnp.asarray(y_tr, ydt), jnp.asarray(y_te, ydt)
    n = len(y_tr)

    def apply(params, xb):
        return _mlp_apply(params, xb, activation, last)

    def measure(params, xb, yb):
        out = apply(params, xb)
        if loss == "ce":
            logp = jax.nn.log_softmax(out)
            nll = -jnp.take_along_axis(logp, yb[:, None], axis=1).mean()
            return Evaluation(nll, (out.argmax(-1) == yb).mean())
        mse = jnp.mean((out - yb) ** 2)
        return Evaluation(mse, 1.0 - mse / jnp.var(yb))  # R^2 as the "accuracy"

    def sample_batch(key):
        idx = jax.random.randint(key, (batch_size,), 0, n)
        return x_tr[idx], y_tr[idx]

    return Task(
        name=name,
        init=lambda key: _mlp_init(key, sizes),
        loss=lambda p, b: measure(p, *b).loss,
        sample_batch=sample_batch,
        evaluate=jax.jit(lambda p: measure(p, x_te, y_te)),
        train_loss=jax.jit(lambda p: measure(p, x_tr, y_tr).loss),
        batch_size=batch_size,
        num_classes=int(y_tr.max()) + 1 if loss == "ce" else 1,
        description=f"{name}: MLP {sizes} {activation}, {loss}",
        data={"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te},
        logits=apply,
        train_batch=lambda: (x_tr, y_tr),
    )


def tasks() -> dict:
    """name -> zero-argument builder of each task."""
    wine, cancer, iris = (
        datasets.load_wine(),
        datasets.load_breast_cancer(),
        datasets.load_iris(),
    )
    diabetes, digits = datasets.load_diabetes(), datasets.load_digits()
    moons = datasets.make_moons(2000, noise=0.25, random_state=0)
    blobs = datasets.make_classification(
        2000, 20, n_informative=10, n_classes=5, random_state=0
    )
    return {
        "wine_tanh": lambda: make_task(
            "wine_tanh",
            wine.data,
            wine.target,
            (13, 64, 3),
            "tanh",
            loss="ce",
            batch_size=32,
        ),
        "cancer_relu3": lambda: make_task(
            "cancer_relu3",
            cancer.data,
            cancer.target,
            (30, 32, 32, 32, 2),
            "relu",
            loss="ce",
            batch_size=64,
        ),
        "moons_deep": lambda: make_task(
            "moons_deep", *moons, (2, *[16] * 5, 2), "gelu", loss="ce", batch_size=128
        ),
        "iris_softmax": lambda: make_task(
            "iris_softmax",
            iris.data,
            iris.target,
            (4, 3),
            "relu",
            loss="ce",
            batch_size=32,
        ),
        "blobs_wide": lambda: make_task(
            "blobs_wide", *blobs, (20, 512, 5), "relu", loss="ce", batch_size=128
        ),
        "diabetes_mse": lambda: make_task(
            "diabetes_mse",
            diabetes.data,
            diabetes.target,
            (10, 64, 1),
            "relu",
            loss="mse",
            batch_size=64,
        ),
        "digits_autoencoder": lambda: make_task(
            "digits_autoencoder",
            digits.data,
            digits.data / 16.0,
            (64, 16, 64),
            "sigmoid",
            loss="mse",
            batch_size=128,
        ),
    }


def run(names, theta, extra, horizons, seeds, log) -> list:
    rows = []
    for name in names:
        t0 = time.perf_counter()
        table = evaluate(
            theta,
            tasks()[name](),
            horizons=horizons,
            seeds=seeds,
            extra=extra,
            baselines=("adam",),
            tune_learned=True,
            base_horizon=1000,
        )
        rows += table.rows
        log(f"{name}: {time.perf_counter() - t0:.0f} s")
    return rows


def summary(rows) -> list:
    """Per task and horizon: each learned row's final loss over tuned Adam's (both
    floored at :data:`FLOOR`), and its diverged seeds."""
    out = []
    key = {(r["task"], r["multiple"], r["optimizer"]): r for r in rows}
    for (task, mult, opt), r in sorted(key.items()):
        if opt == "adam":
            continue
        adam = key[(task, mult, "adam")]
        out.append(
            {
                "task": task,
                "multiple": mult,
                "optimizer": opt,
                "loss": r["train_loss_mean"],
                "adam": adam["train_loss_mean"],
                "ratio": max(r["train_loss_mean"], FLOOR)
                / max(adam["train_loss_mean"], FLOOR),
                "diverged": r["diverged"],
                "adam_diverged": adam["diverged"],
                "step": r["hyperparameter"],
            }
        )
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--theta", default=str(THETAS / "star_bounded.npz"))
    p.add_argument("--extra", nargs="*", default=[str(THETAS / "star.npz")])
    p.add_argument("--only", nargs="*", default=None)
    p.add_argument("--horizons", type=int, nargs="*", default=[1, 10])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    names = a.only or list(tasks())
    unknown = sorted(set(names) - set(tasks()))
    if unknown:
        p.error(f"--only: unknown tasks {unknown}")
    t0 = time.perf_counter()
    rows = run(
        names,
        a.theta,
        a.extra,
        a.horizons,
        a.seeds,
        lambda s: print(s, file=sys.stderr, flush=True),
    )
    summ = summary(rows)
    for s in summ:
        print(
            f"{s['task']:20s} {s['multiple']:3d}x {s['optimizer']:22s} "
            f"{s['loss']:.3g} vs adam {s['adam']:.3g} (x{s['ratio']:.3g}) "
            f"diverged {s['diverged']}/{a.seeds} (adam {s['adam_diverged']})"
        )
    if a.json:
        meta = {
            "machine": cpu_name(),
            "seconds": time.perf_counter() - t0,
            "command": " ".join(
                ["python benchmarks/bench_beyond.py", *(argv or sys.argv[1:])]
            ),
            "theta": a.theta,
            "extra": a.extra,
        }
        pathlib.Path(a.json).write_text(
            json.dumps(
                {"meta": meta, "summary": summ, "rows": rows}, indent=1, default=float
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
