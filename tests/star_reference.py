"""An independent float64 NumPy reference of STAR and small_fc_lopt.

Written from the specification (upstream's ``adafac_nominal.py``: feature order and
constants), not from the JAX code: it materialises the full ``(num_elements, 39)``
feature matrix of each tensor and runs the MLP as matrix products, with explicit loops
where that reads more plainly. Slow and simple on purpose.

Dtype convention shared with the JAX code (``stability.lopt.star``): everything is
float64 here, and the initial decays (0.9, 0.99, 0.999) are first rounded to float32,
as upstream stores them, so that ``1 - decay`` is ``1 - float32(decay)``. When the JAX
code runs on float64 parameters it does the same, and the two agree to rounding.
"""

import numpy as np

MOMENTUM_INIT = (0.9, 0.99, 0.999)
RMS_INIT = (0.999,)
ADAFACTOR_INIT = (0.9, 0.99, 0.999)
TAUS = np.array([1, 3, 10, 30, 100, 300, 1000, 3000, 10000, 30000, 100000], float)


def _decay(init, offset, clip):
    base = np.asarray(init, dtype=np.float32).astype(np.float64)
    d = 1.0 - (1.0 - base) * np.exp(10.0 * np.asarray(offset, np.float64))
    return np.clip(d, 0.0, 1.0) if clip else d


class ReferenceOptimizer:
    """``step(params, grads) -> new params`` on dicts of NumPy arrays."""

    def __init__(
        self,
        theta,
        *,
        kind="star",
        nominal_stepsize=1e-3,
        step_mult=1e-3,
        exp_mult=1e-3,
        precondition=True,
        nominal_estimator="AdamAggMo",
        aggregate_magnitudes=False,
        nominal=True,
    ):
        self.kind = kind
        self.mlp = {k: np.asarray(v, np.float64) for k, v in theta["mlp"].items()}
        self.b_mom = _decay(MOMENTUM_INIT, theta["momentum_decays"], clip=False)
        self.b_rms = _decay(RMS_INIT, theta["rms_decays"], clip=True)[0]
        self.b_fac = _decay(ADAFACTOR_INIT, theta["adafactor_decays"], clip=True)
        self.nominal_stepsize = nominal_stepsize
        self.step_mult = step_mult
        self.exp_mult = exp_mult
        self.precondition = precondition
        self.estimator = nominal_estimator
        self.aggregate = aggregate_magnitudes
        self.nominal = nominal
        self.t = 0
        self.acc = {}

    # -- accumulators ---------------------------------------------------------------
    def _init_acc(self, shape):
        shape = shape if shape else (1,)
        acc = {"m": [np.zeros(shape) for _ in range(3)], "v": np.zeros(shape)}
        if len(shape) >= 2:
            order = np.argsort(shape)
            d1, d0 = int(order[-2]), int(order[-1])
            acc["dims"] = (d1, d0)
            acc["row"] = [np.zeros(np.delete(shape, d0)) for _ in range(3)]
            acc["col"] = [np.zeros(np.delete(shape, d1)) for _ in range(3)]
        else:
            acc["dims"] = None
            acc["full"] = [np.zeros(shape) for _ in range(3)]
        return acc

    def _features(self, p, g, acc):
        """Update ``acc`` in place with ``g``; return the (N, 28) feature matrix, and
        the per-element momenta and second moment (flattened)."""
        for i in range(3):
            b = self.b_mom[i]
            acc["m"][i] = b * acc["m"][i] + (1 - b) * g
        acc["v"] = self.b_rms * acc["v"] + (1 - self.b_rms) * g**2
        g2 = g**2 + 1e-30
        m, v = acc["m"], acc["v"]
        cols = [g, p, m[0], m[1], m[2], v]
        cols += [m[i] / np.sqrt(v + 1e-6) for i in range(3)]
        cols += [1 / np.sqrt(v + 1e-6)]
        if acc["dims"] is not None:
            d1, d0 = acc["dims"]
            # axis d1 of the full tensor is axis d1 - 1 of a row accumulator when the
            # removed axis d0 came before it.
            d1_in_row = d1 - 1 if d1 > d0 else d1
            row_tiled, col_tiled, row_f, col_f = [], [], [], []
            for k in range(3):
                c = self.b_fac[k]
                acc["row"][k] = c * acc["row"][k] + (1 - c) * g2.mean(axis=d0)
                acc["col"][k] = c * acc["col"][k] + (1 - c) * g2.mean(axis=d1)
                row, col = acc["row"][k], acc["col"][k]
                ratio = row / (row.mean(axis=d1_in_row, keepdims=True) + 1e-9)
                row_f.append(np.expand_dims(1 / np.sqrt(np.maximum(ratio, 1e-9)), d0))
                col_f.append(np.expand_dims(1 / np.sqrt(np.maximum(col, 1e-9)), d1))
                row_tiled.append(np.repeat(np.expand_dims(row, d0), g.shape[d0], d0))
                col_tiled.append(np.repeat(np.expand_dims(col, d1), g.shape[d1], d1))
            cols += [g * row_f[k] * col_f[k] for k in range(3)]
            cols += row_tiled + col_tiled
            cols += [1 / np.sqrt(x + 1e-8) for x in row_tiled]
            cols += [1 / np.sqrt(x + 1e-8) for x in col_tiled]
            cols += [m[k] * row_f[k] * col_f[k] for k in range(3)]
        else:
            full = acc["full"]
            for k in range(3):
                c = self.b_fac[k]
                full[k] = c * full[k] + (1 - c) * g2
            cols += [g / np.sqrt(np.maximum(full[k] + 1e-9, 1e-9)) for k in range(3)]
            cols += full + full
            cols += [1 / np.sqrt(x + 1e-8) for x in full] * 2
            cols += [m[k] * (full[k] + 1e-6) ** -0.5 for k in range(3)]
        assert len(cols) == 28
        feats = np.stack([np.broadcast_to(c, g.shape).ravel() for c in cols], axis=1)
        return feats

    # -- one step -------------------------------------------------------------------
    def _tensor_step(self, p, g, acc):
        shape = p.shape
        p = p.reshape(shape if shape else (1,))
        g = g.reshape(p.shape)
        feats = self._features(p, g, acc)
        feats = feats / np.sqrt(1e-5 + np.mean(feats**2, axis=0, keepdims=True))
        time = np.tanh(self.t / TAUS - 1.0)
        x = np.concatenate([feats, np.tile(time, (feats.shape[0], 1))], axis=1)
        w = self.mlp
        h = np.maximum(x @ w["w0"] + w["b0"], 0.0)
        h = np.maximum(h @ w["w1"] + w["b1"], 0.0)
        out = h @ w["w2"] + w["b2"]
        m = [mi.ravel() for mi in acc["m"]]
        precond = 1 / np.sqrt(acc["v"].ravel() + 1e-6)
        if self.kind == "small_fc_lopt":
            step = self.step_mult * out[:, 0] * np.exp(self.exp_mult * out[:, 1])
        else:
            mag_b, mag_g = out[:, 1], out[:, 2]
            if self.aggregate:
                mag_b, mag_g = mag_b.mean(), mag_g.mean()
            step = self.step_mult * out[:, 0] * np.exp(self.exp_mult * mag_b)
            if self.precondition:
                step = step * precond
            if self.nominal:
                estimates = {
                    "SGD": g.ravel(),
                    "SGDM": m[0],
                    "AggMo": (m[0] + m[1] + m[2]) / 3,
                    "Adam": m[0] * precond,
                    "AdamAggMo": (m[0] + m[1] + m[2]) / 3 * precond,
                }
                g_hat = estimates[self.estimator]
                step = (
                    step + self.nominal_stepsize * np.exp(self.exp_mult * mag_g) * g_hat
                )
        return (p.ravel() - step).reshape(shape)

    def step(self, params, grads):
        new = {}
        for name in params:
            p = np.asarray(params[name], np.float64)
            g = np.asarray(grads[name], np.float64)
            if name not in self.acc:
                self.acc[name] = self._init_acc(p.shape)
            new[name] = self._tensor_step(p, g, self.acc[name])
        self.t += 1
        return new
