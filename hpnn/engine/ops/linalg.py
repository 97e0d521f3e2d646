"""Matrix products: matmul and the fused dense op ``linear`` (x @ W + b)."""

from __future__ import annotations

from hpnn.backend import get_xp
from hpnn.engine.ops.arith import _pair, unbroadcast
from hpnn.engine.tensor import Function, Tensor


def mm(a, b):
    """``a @ b`` on arrays, with a second operand that is a transposed view (``w.T``,
    ``k.swapaxes(-1, -2)``) copied to C order first: OpenBLAS's kernels for a
    transposed second operand run at a third to a half of their speed on these
    machines (one core, float32: attention scores (64, 128, 32) @ (64, 32, 128) 2.37 ms
    on the view, 0.81 + 0.13 to copy; a Conv1D's input gradient (6272, 128) @ (128, 320)
    12.9 ms, 5.5 ms), and the copy is the size of the operand, not of the product."""
    if b.ndim >= 2 and not b.flags.c_contiguous and a.ndim >= 2 and a.shape[-2] >= 8:
        b = get_xp(b).ascontiguousarray(b)
    return a @ b


class MatMul(Function):
    def flops(self, xs, y) -> int:
        """Multiply-adds of the forward pass, times 2 (``hpnn.parallel``'s cost model)."""
        return 2 * y.size * xs[0].shape[-1]

    def forward(self, a, b):
        self.a, self.b = a, b
        return mm(a, b)

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
            ga = mm(gy, b2.swapaxes(-1, -2))
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
        gx = mm(gy, w.T) if self.needs_input_grad[0] else None
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
