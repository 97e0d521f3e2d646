"""Matrix products: matmul and the fused dense op ``linear`` (x @ W + b)."""

from __future__ import annotations

from hpnn.engine.ops.arith import _pair, unbroadcast
from hpnn.engine.tensor import Function, Tensor


class MatMul(Function):
    def flops(self, xs, y) -> int:
        """Multiply-adds of the forward pass, times 2 (``hpnn.parallel``'s cost model)."""
        return 2 * y.size * xs[0].shape[-1]

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy):
        a, b = self.a, self.b
        # Treat 1-D operands as a row (a) or a column (b) matrix, as NumPy does.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a.ndim == 1:
            gy = gy[..., None, :] if b.ndim > 1 else gy[..., None]
        if b.ndim == 1:
            gy = gy[..., None]
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = gy @ b2.swapaxes(-1, -2)
            ga = unbroadcast(ga, a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            gb = a2.swapaxes(-1, -2) @ gy
            gb = unbroadcast(gb, b2.shape).reshape(b.shape)
        return ga, gb


class Linear(Function):
    """``x @ W + b`` for ``x`` of shape ``(..., in)``, ``W`` ``(in, out)``, ``b`` ``(out,)``."""

    def flops(self, xs, y) -> int:
        return 2 * y.size * xs[1].shape[0]

    def forward(self, x, w, b=None):
        self.x, self.w = x, w
        y = x @ w
        if b is not None:
            y += b
        return y

    def backward(self, gy):
        x, w = self.x, self.w
        gy2 = gy.reshape(-1, gy.shape[-1])
        gx = (gy @ w.T) if self.needs_input_grad[0] else None
        gw = x.reshape(-1, x.shape[-1]).T @ gy2 if self.needs_input_grad[1] else None
        if len(self.needs_input_grad) == 3:
            return gx, gw, gy2.sum(axis=0) if self.needs_input_grad[2] else None
        return gx, gw


def matmul(a, b) -> Tensor:
    """Matrix product with NumPy's rules (batched, broadcasting, 1-D operands)."""
    return MatMul()(*_pair(a, b))


def linear(x, w, b=None) -> Tensor:
    """Return ``x @ w + b`` in one op (the dense layer's forward)."""
    return Linear()(x, w) if b is None else Linear()(x, w, b)
