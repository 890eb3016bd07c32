r"""Linear algebra behind Theorem 1, Lemma 2 and Lemma 3: square roots of SPD
matrices, symmetry and commutation tests, shared eigenpairs, and the certified
three-valued test of "P symmetric, or commuting with H and diagonalizable with real
eigenvalues" (:func:`structure`; why a tolerance cannot stand in for it, and why
what it accepts satisfies Theorem 1's conclusion exactly, is in
:mod:`stability.lemmas.nominal`).
"""

from typing import NamedTuple

import numpy as np

from stability._validation import check_scalar, check_spd, check_square
from stability.lemmas import _exact
from stability.lemmas._claim import FAILS, HOLDS, SLACK, UNDECIDED, verdict

SYMMETRY_RTOL = 1e-10
COMMUTE_RTOL = 1e-9
REAL_RTOL = 1e-9
MAX_EIGVEC_COND = 1e8  # beyond this, P is treated as not diagonalizable
CLUSTER_RTOL = 1e-9  # curvatures this close (relative to L) share a block


def spd_power(H, power):
    """:math:`H^{\\text{power}}` of an SPD matrix through its eigendecomposition."""
    power = check_scalar("power", power)
    w, q = np.linalg.eigh(check_spd("H", H))
    return (q * w**power) @ q.T


def is_symmetric(P, rtol=SYMMETRY_RTOL):
    P = check_square("P", P)
    scale = max(float(np.max(np.abs(P))), 1e-300)
    return bool(np.max(np.abs(P - P.T)) <= rtol * scale)


def commutes(H, P, rtol=COMMUTE_RTOL):
    """``||PH - HP||_F <= rtol ||P||_F ||H||_F``."""
    H = check_square("H", H)
    P = check_square("P", P, n=H.shape[0])
    scale = np.linalg.norm(P) * np.linalg.norm(H)
    return bool(np.linalg.norm(P @ H - H @ P) <= rtol * max(scale, 1e-300))


def real_spectrum(P):
    """``(ok, eigenvalues)``: whether ``P`` is (numerically) diagonalizable with real
    eigenvalues, and its eigenvalues (real parts, ascending)."""
    P = check_square("P", P)
    if is_symmetric(P):
        return True, np.linalg.eigvalsh(0.5 * (P + P.T))
    w, v = np.linalg.eig(P)
    scale = max(float(np.max(np.abs(w))), float(np.max(np.abs(P))), 1e-300)
    real = bool(np.max(np.abs(w.imag)) <= REAL_RTOL * scale)
    cond = np.linalg.cond(v)
    ok = real and bool(np.isfinite(cond) and cond <= MAX_EIGVEC_COND)
    return ok, np.sort(w.real)


def symmetric_or_commuting(H, P):
    """P symmetric, or P commutes with H and is diagonalizable with real
    eigenvalues."""
    return is_symmetric(P) or (commutes(H, P) and real_spectrum(P)[0])


def shared_eigenpairs(H, P):
    """``(h, p)``: the curvature and the eigenvalue of ``P`` on each shared eigenpair
    of a ``P`` that commutes with ``H`` (diagonalizable, real eigenvalues).

    In ``H``'s eigenbasis ``Q``, ``B = Q^T P Q`` is block diagonal over the eigenspaces
    of ``H`` (``(h_i - h_j) B_ij = (Q^T (HP - PH) Q)_ij = 0``); the eigenvalues of each
    block pair with that eigenspace's curvature.
    """
    if not commutes(H, P):
        raise ValueError("P: must commute with H")
    w, q = np.linalg.eigh(H)
    b = q.T @ P @ q
    edges = np.flatnonzero(np.diff(w) > 1e-9 * w[-1]) + 1
    hs, ps = [], []
    for idx in np.split(np.arange(w.size), edges):
        block = b[np.ix_(idx, idx)]
        ok, p = real_spectrum(block)
        if not ok:
            raise ValueError("P: must be diagonalizable with real eigenvalues")
        hs.append(np.full(idx.size, w[idx].mean()))
        ps.append(p)
    return np.concatenate(hs), np.concatenate(ps)


class Structure(NamedTuple):
    """The certificate of :func:`structure`.

    Attributes:
      status: of ``P_symmetric_or_commuting`` (``"holds"``, ``"fails"``,
        ``"undecided"``).
      beta: bound on the distance of every eigenvalue of the closed loop from the
        structured model's (``inf`` when there is no model).
      lam: the eigenvalues of ``P`` the bounds are checked on (real parts,
        ascending): of the model where there is one.
      lam_err: their error bar (it covers the exact eigenvalues of ``P`` and of the
        model).
      real: status of ``P_real_spectrum``.
    """

    status: str
    beta: float
    lam: np.ndarray
    lam_err: float
    real: str


def spectrum_status(P):
    """``(status, eigenvalues, err)``: whether ``P`` is diagonalizable with real
    eigenvalues, three-valued, its eigenvalues (real parts, ascending) and their
    error bar. Holds for an exactly symmetric ``P``, or when the eigenvalues'
    Bauer--Fike discs (radius ``err``) meet the real axis and are pairwise disjoint
    (distinct real eigenvalues); fails when one is farther than ``2 n err`` from the
    real axis; undecided otherwise. Float64 ``eig`` where its bar is below ``1e-9
    ||P||``, else 50-digit eigenvalues (:func:`stability.lemmas._exact.mp_spectrum`),
    so the bounds are decided even for a defective ``P``."""
    P = check_square("P", P)
    n = P.shape[0]
    rnd = _exact.rounding(n) * np.linalg.norm(P)
    if np.array_equal(P, P.T):
        return HOLDS, np.linalg.eigvalsh(P), rnd
    w, v = np.linalg.eig(P)
    err = np.linalg.cond(v) * rnd
    if not err <= 1e-9 * max(np.linalg.norm(P), 1e-300):  # (nearly) defective
        w, err = _exact.mp_spectrum(P)
    lam = np.sort(w.real)
    if np.max(np.abs(w.imag)) > 2 * n * err:
        return FAILS, lam, 2 * n * err
    gaps = np.abs(w[:, None] - w[None, :]) + np.diag(np.full(n, np.inf))
    real = np.max(np.abs(w.imag)) <= err and np.min(gaps) > 2 * err
    return (HOLDS if real else UNDECIDED), lam, 2 * n * err


def _symmetric_model(H, P, alpha, h_err):
    """Bauer--Fike around the symmetric part: ``(beta, lam, lam_err)``."""
    n = P.shape[0]
    L = float(np.linalg.eigvalsh(H)[-1])
    rnd = _exact.rounding(n)
    asym = np.linalg.norm(P - P.T) / 2
    k_norm = np.linalg.norm(alpha * np.eye(n) + P)
    sim = np.sqrt(np.linalg.cond(H))  # H^{1/2} K H^{1/2} <- K H
    beta = L * asym + rnd * k_norm * L + sim * k_norm * h_err
    lam = np.linalg.eigvalsh(0.5 * (P + P.T))
    lam_err = 2 * n * asym + rnd * np.linalg.norm(P)
    return beta, lam, lam_err


def _commuting_model(H, P, alpha, h_err):
    """Bauer--Fike around the ``P`` that commutes with the block-clustered ``H``:
    ``(beta, lam, lam_err)``. In ``H``'s eigenbasis ``B = Q^T P Q``; the model keeps
    ``B``'s diagonal blocks over clusters of curvatures (within ``CLUSTER_RTOL L``),
    with each cluster's mean curvature, and is diagonalised by ``V = diag(V_j)``."""
    n = P.shape[0]
    rnd = _exact.rounding(n)
    w, q = np.linalg.eigh(H)
    L = float(w[-1])
    b = q.T @ P @ q
    edges = np.flatnonzero(np.diff(w) > CLUSTER_RTOL * L) + 1
    hbar = np.empty(n)
    p = np.empty(n, complex)
    v = np.zeros((n, n), complex)
    bc = np.zeros((n, n))
    for idx in np.split(np.arange(n), edges):
        blk = np.ix_(idx, idx)
        hbar[idx] = w[idx].mean()
        bc[blk] = b[blk]
        p[idx], v[blk] = np.linalg.eig(b[blk])
    kv = np.linalg.cond(v)
    if not np.isfinite(kv):
        return np.inf, np.sort(p.real), np.inf
    k_norm = np.linalg.norm(alpha * np.eye(n) + P)
    off = np.linalg.norm(b - bc)
    delta = (
        np.linalg.norm((alpha * np.eye(n) + bc) * (w - hbar)[None, :])
        + np.linalg.norm((b - bc) * w[None, :])
        + rnd * k_norm * L
        + k_norm * h_err
    )
    beta = kv * delta + L * float(np.max(np.abs(p.imag)))
    lam_err = 2 * n * kv * (off + rnd * np.linalg.norm(P))
    return beta, np.sort(p.real), lam_err


def structure(H, P, alpha, *, h_err=0.0) -> Structure:
    r"""Certify "P symmetric, or commuting with H (diagonalizable, real
    eigenvalues)" for the loop :math:`I - (\alpha I + P) H`, three-valued.

    Holds when ``P`` is exactly symmetric, or when a model (the symmetric part of
    ``P``, or the part of ``P`` commuting with ``H`` with close curvatures merged)
    is close enough that every eigenvalue of the exact loop lies within
    :math:`\beta \le` ``SLACK / 2`` of the model's (Bauer--Fike with the model's
    eigenvector condition number, plus a rounding allowance). Fails when ``P`` is
    farther than ``SYMMETRY_RTOL`` from symmetric and ``COMMUTE_RTOL`` from commuting
    (relative), or its model has certified non-real eigenvalues; undecided
    otherwise. ``h_err`` bounds the distance of ``H`` from the exact matrix the loop
    is about (Lemma 2's float :math:`H^{1/2}`)."""
    H = check_square("H", H)
    P = check_square("P", P, n=H.shape[0])
    real, lam, lam_err = spectrum_status(P)
    if np.array_equal(P, P.T) and h_err == 0:
        return Structure(HOLDS, 0.0, lam, lam_err, real)
    p_norm = max(np.linalg.norm(P), 1e-300)
    near_sym = np.linalg.norm(P - P.T) <= SYMMETRY_RTOL * p_norm
    near_comm = commutes(H, P)
    if not (near_sym or near_comm):
        return Structure(FAILS, np.inf, lam, lam_err, real)
    models = []
    if near_sym:
        models.append(_symmetric_model(H, P, alpha, h_err))
    if near_comm:
        models.append(_commuting_model(H, P, alpha, h_err))
    beta, mlam, mlam_err = min(models, key=lambda m: m[0])
    if beta <= SLACK / 2:
        return Structure(HOLDS, beta, mlam, mlam_err, real)
    if real == FAILS and not near_sym:
        return Structure(FAILS, beta, lam, lam_err, real)
    return Structure(UNDECIDED, beta, lam, lam_err, real)


def spd_status(H):
    """Whether ``H`` is symmetric positive definite, three-valued: undecided when it
    is symmetric only to rounding or its least eigenvalue is within rounding of 0."""
    H = np.asarray(H, float)
    w = np.linalg.eigvalsh(0.5 * (H + H.T))
    tol = _exact.rounding(H.shape[0]) * max(abs(w[-1]), 1e-300)
    if not np.array_equal(H, H.T):
        return FAILS if not is_symmetric(H) else UNDECIDED
    return verdict(w[0], tol)
