r"""The semidefinite program behind a certified rate: the interpolation inequalities
of :math:`F(\mu, L)`, the certificate's matrices and their float64 check, and the
compiled cvxpy problem (one per state size, gradient channels and multipliers).

The certificate itself is stated in :mod:`stability.analyses.certified`.
"""

import itertools
import warnings

import numpy as np

_TOL = 1e-7  # relative tolerance of the float64 check of a solver's certificate


def _sym(m):
    return 0.5 * (m + m.T)


def _interpolation(xi, gi, xj, gj, mu, L):
    """Quadratic part ``Q`` of ``q_ij = f_i - f_j - v^T Q v >= 0`` (Taylor et al.)."""
    X, G = xi - xj, gi - gj
    k = 1.0 / (2.0 * (1.0 - mu / L))
    return _sym(gj.T @ X) + k * (
        G.T @ G / L + mu * X.T @ X - (2 * mu / L) * _sym(G.T @ X)
    )


def _unit(rows, cols, at):
    e = np.zeros((rows, cols))
    e[:, at : at + rows] = np.eye(rows)
    return e


class _Matrices:
    """The certificate's constant matrices for one ``(A, B, C)`` and its check.

    Quadratic forms over the basis ``v = (xi_k, u_k, u_{k+1})`` (shifted to the
    fixed point); ``sector`` uses ``(xi_k, u_k)`` only.
    """

    def __init__(self, A, B, C, mu, L, multipliers):
        n, m = B.shape
        zf = multipliers == "zames_falb"
        N = n + (2 * m if zf else m)
        E, u0 = _unit(n, N, 0), _unit(m, N, n)
        nxt = A @ E + B @ u0
        x0 = C @ E
        self.Q, self.fcoef = {}, {}  # name -> quadratic part, (coef of f_k, f_k+1)
        if zf:
            u1 = _unit(m, N, n + m)
            # the Lyapunov function sees (xi, u) now and next
            self.now, self.next = np.vstack([E, u0]), np.vstack([nxt, u1])
            zero = np.zeros((m, N))
            pts = {"k": (x0, u0, 0), "k+1": (C @ nxt, u1, 1), "*": (zero, zero, None)}
            for i, j in itertools.permutations(pts, 2):
                (xi, gi, fi), (xj, gj, fj) = pts[i], pts[j]
                self.Q[f"{i},{j}"] = _interpolation(xi, gi, xj, gj, mu, L)
                coef = [0.0, 0.0]
                if fi is not None:
                    coef[fi] += 1.0
                if fj is not None:
                    coef[fj] -= 1.0
                self.fcoef[f"{i},{j}"] = coef
            # V_k >= |xi_k|^2 from the two inequalities between y_k and y_*,
            # over the basis w = (xi_k, u_k)
            w_x, w_u = C @ _unit(n, n + m, 0), _unit(m, n + m, n)
            w0 = np.zeros((m, n + m))
            self.Qpos = [
                _interpolation(w_x, w_u, w0, w0, mu, L),
                _interpolation(w0, w0, w_x, w_u, mu, L),
            ]
            self.state = np.zeros((n + m, n + m))
            self.state[:n, :n] = np.eye(n)
        else:
            self.now, self.next = E, nxt
            # (u - mu y)^T (L y - u) >= 0, i.e. q = -v^T Q v with this Q
            self.Q["sector"] = -_sym((u0 - mu * x0).T @ (L * x0 - u0))
            self.fcoef["sector"] = [0.0, 0.0]
        self.names = list(self.Q)
        self.coef = np.array([self.fcoef[k] for k in self.names])  # (names, 2)
        self.zf, self.n, self.m, self.mu, self.L, self.C = zf, n, m, mu, L, C

    def check(self, rho, P, lam, c=0.0, nu=None):
        """The certificate checked in float64, or None when it fails the check."""
        if P is None or lam is None or (self.zf and (c is None or nu is None)):
            return None
        P = _sym(np.asarray(P, float))
        lam = np.asarray(lam, float)
        c = float(c)
        parts = [self.next.T @ P @ self.next, rho * rho * (self.now.T @ P @ self.now)]
        parts += [lam[i] * self.Q[q] for i, q in enumerate(self.names)]
        scale = 1.0 + sum(np.linalg.norm(t, 2) for t in parts)
        lmi = parts[0] - parts[1] - sum(parts[2:])
        residual = float(np.max(np.linalg.eigvalsh(_sym(lmi)))) / scale
        ok = residual <= _TOL and min(lam.min(), c) >= -_TOL * scale
        norm_c = np.linalg.norm(self.C, 2) ** 2
        if self.zf:
            nu = np.asarray(nu, float)
            f_k = -rho * rho * c + self.coef[:, 0] @ lam
            f_k1 = c + self.coef[:, 1] @ lam
            pos = P - self.state + nu[0] * self.Qpos[0] + nu[1] * self.Qpos[1]
            ok = ok and max(abs(f_k), abs(f_k1), abs(c - nu[0] + nu[1])) <= _TOL * scale
            ok = ok and nu.min() >= -_TOL * scale
            ok = ok and np.linalg.eigvalsh(_sym(pos))[0] >= -_TOL * scale
            # V_0 <= K |xi_0|^2 from |u| <= L |C xi| and f - f_* <= L/2 |C xi|^2
            d = np.concatenate([np.ones(self.n), np.full(self.m, self.L * norm_c**0.5)])
            top = max(float(np.linalg.eigvalsh(P * np.outer(d, d))[-1]), 0.0)
            constant = 2 * top + c * self.L * norm_c / 2
        else:
            eig = np.linalg.eigvalsh(P)
            ok = ok and eig[0] >= 1 - 1e-6
            constant = float(eig[-1] / eig[0])
        if not ok:
            return None
        weights = dict(zip(self.names, lam.tolist(), strict=True))
        if self.zf:
            weights |= {"lower:k,*": float(nu[0]), "lower:*,k": float(nu[1])}
        return {
            "P": P,
            "c": c,
            "weights": weights,
            "constant": float(constant),
            "residual": residual,
        }


class _Lmi:
    """The certificate's SDP for loops with ``n`` states and ``m`` gradient
    channels: the system and ``rho^2`` are parameters (cvxpy's DPP), so the problem
    is compiled once and each solve only swaps numbers.

    It is solved for ``f / L`` in ``F(mu / L, 1)`` (the same loop with ``B L``),
    which is better conditioned; :meth:`_original` maps the certificate back.
    """

    def __init__(self, n, m, multipliers):
        import cvxpy as cp

        eye, zeros = np.eye(n), np.zeros((n, m))
        t = _Matrices(eye, zeros, zeros.T, 0.5, 1.0, multipliers)  # shapes only
        self.zf, self.names = t.zf, t.names
        self.names_kind = multipliers
        k, N = t.now.shape
        self.rho2 = cp.Parameter(nonneg=True)
        self.knext = cp.Parameter((N * N, k * k))  # vec(next^T P next) = K vec(P)
        self.qmat = cp.Parameter((N * N, len(t.names)))  # columns vec(Q_i)
        self.P = cp.Variable((k, k), symmetric=True)
        self.lam = cp.Variable(len(t.names), nonneg=True)
        vec_p = cp.vec(self.P, order="F")
        know = np.kron(t.now.T, t.now.T)
        lmi = self.knext @ vec_p - self.rho2 * (know @ vec_p) - self.qmat @ self.lam
        lmi = cp.reshape(lmi, (N, N), order="F")
        cons = [0.5 * (lmi + lmi.T) << 0]
        if self.zf:
            self.c = cp.Variable(nonneg=True)
            self.nu = cp.Variable(2, nonneg=True)
            self.qpos = cp.Parameter((k * k, 2))
            cons += [
                -self.rho2 * self.c + t.coef[:, 0] @ self.lam == 0,
                self.c + t.coef[:, 1] @ self.lam == 0,
                self.c - self.nu[0] + self.nu[1] == 0,
            ]
            pos = self.P - t.state + cp.reshape(self.qpos @ self.nu, (k, k), order="F")
            cons.append(0.5 * (pos + pos.T) >> 0)
        else:
            self.c = self.nu = None
            cons.append(self.P >> np.eye(n))
        self.problem = cp.Problem(cp.Minimize(0), cons)

    def set(self, A, B, C, mu, L):
        """Load one system and class; returns ``self``."""
        self.scale = L
        self.mats = mats = _Matrices(A, B * L, C, mu / L, 1.0, self.names_kind)
        self.knext.value = np.kron(mats.next.T, mats.next.T)
        self.qmat.value = np.stack(
            [mats.Q[q].ravel(order="F") for q in self.names], axis=1
        )
        if self.zf:
            self.qpos.value = np.stack([q.ravel(order="F") for q in mats.Qpos], 1)
        return self

    def solve(self, rho, solver, fallback=True):
        """(feasible?, solver status, certificate dict or None); raises
        ``_SolverFailed``. Where Clarabel fails (it can, on the boundary of the
        feasible set) SCS is tried, if ``fallback``, before the failure is
        reported."""
        import cvxpy as cp

        self.rho2.value = rho * rho
        tried = []
        chain = (solver, "SCS") if solver == "CLARABEL" and fallback else (solver,)
        for name in chain:
            try:
                with warnings.catch_warnings():
                    # an inaccurate status is handled here: its solution is checked
                    warnings.filterwarnings("ignore", "Solution may be inaccurate")
                    self.problem.solve(solver=name)
            except cp.error.SolverError as err:
                tried.append(f"{name}: {err}")
                continue
            status = self.problem.status
            if status in ("infeasible", "infeasible_inaccurate"):
                return False, status, None
            if status in ("optimal", "optimal_inaccurate"):
                break
            tried.append(f"{name}: status {status}")
        else:
            raise _SolverFailed("; ".join(tried))
        values = [self.P.value, self.lam.value]
        if self.zf:
            values += [self.c.value, self.nu.value]
        cert = self.mats.check(rho, *values)
        if cert is not None:
            cert = self._original(cert)
        return cert is not None, status, cert

    def _original(self, cert):
        """The certificate for f itself: every inequality of f / L is 1/L times
        that of f (1/L^2 for the sector's), u = L u_scaled."""
        s, n, m = self.scale, self.mats.n, self.mats.m
        if self.zf:
            d = np.concatenate([np.ones(n), np.full(m, 1 / s)])
            return cert | {
                "P": cert["P"] * np.outer(d, d),
                "c": cert["c"] / s,
                "weights": {k: v / s for k, v in cert["weights"].items()},
            }
        return cert | {"weights": {k: v / s**2 for k, v in cert["weights"].items()}}


class _SolverFailed(Exception):
    pass


_LMIS = {}  # (n, m, multipliers) -> compiled _Lmi


def _lmi(A, B, C, mu, L, multipliers):
    key = (*B.shape, multipliers)
    if key not in _LMIS:
        if len(_LMIS) > 32:
            _LMIS.clear()
        _LMIS[key] = _Lmi(*key)
    return _LMIS[key].set(A, B, C, mu, L)
