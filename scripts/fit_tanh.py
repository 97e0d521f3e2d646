"""Fit the rational tanh that hpnn's compiled kernels use (hpnn/engine/kernels/rnn.py).

tanh(x) ~= x * P(u) / Q(u), u = (x / L)^2, |x| clipped to L = 7.9 (tanh(7.9) rounds
to 1 - 3e-7 in float32), P of degree 5 and Q of degree 4 with Q(0) = 1. The fit
minimises the relative error by iteratively reweighted linear least squares
(Sanathanan-Koerner). Prints the coefficients and the float32 error.

    python scripts/fit_tanh.py
"""

import numpy as np

L, P, Q = 7.9, 6, 4


def fit():
    x = np.linspace(1e-6, L, 400_001)
    t = np.tanh(x)
    u = (x / L) ** 2
    w = 1 / t
    for _ in range(30):
        cols = [x * u**k for k in range(P)] + [-t * u**k for k in range(1, Q + 1)]
        a = np.stack(cols, 1) * w[:, None]
        coef, *_ = np.linalg.lstsq(a, t * w, rcond=None)
        p, q = coef[:P], np.r_[1.0, coef[P:]]
        w = 1 / (t * np.abs(np.polyval(q[::-1], u)))
    return p, q


def evaluate(x, p, q):
    f = np.float32
    x = np.clip(x.astype(f), f(-L), f(L))
    u = x * x * f(1 / (L * L))
    num, den = np.zeros_like(x), np.zeros_like(x)
    for c in p[::-1]:
        num = num * u + f(c)
    for c in q[::-1]:
        den = den * u + f(c)
    return x * num / den


if __name__ == "__main__":
    p, q = fit()
    print("P =", tuple(float(np.float32(c)) for c in p))
    print("Q =", tuple(float(np.float32(c)) for c in q))
    xs = np.linspace(-12, 12, 4_000_001).astype(np.float32)
    err = np.abs(evaluate(xs, p, q) - np.tanh(xs.astype(np.float64)))
    print(f"max abs error in float32: {err.max():.2e}")
