"""Ops behind Keras' ``cumsum`` and ``einsum``: a cumulative sum along one axis and
Einstein summation over explicit subscripts (the other ``keras.ops`` functions are
compositions of existing ops)."""

from __future__ import annotations

from hpnn.backend import get_xp
from hpnn.engine.tensor import Function, Tensor


class CumSum(Function):
    def __init__(self, axis: int):
        self.axis = axis

    def forward(self, a):
        return get_xp(a).cumsum(a, axis=self.axis, dtype=a.dtype)

    def backward(self, gy):
        # y_j = sum_{i<=j} x_i, so dx_i = sum_{j>=i} gy_j: a cumulative sum from the end
        xp = get_xp(gy)
        rev = xp.flip(gy, axis=self.axis)
        return xp.flip(xp.cumsum(rev, axis=self.axis), axis=self.axis)


def parse_subscripts(subscripts: str, n: int) -> tuple[list[str], str]:
    """The input subscripts and the output subscript of an explicit or implicit
    ``einsum`` spec for ``n`` operands (letters only; no ellipsis)."""
    spec = subscripts.replace(" ", "")
    lhs, _, out = spec.partition("->")
    ins = lhs.split(",")
    if "." in spec or len(ins) != n or not all(s.isalpha() for s in ins):
        raise ValueError(
            f"einsum: expected {n} comma-separated subscripts of letters (no '...'). "
            f"Received: subscripts={subscripts!r}"
        )
    if "->" not in spec:  # implicit mode: the letters named once, in alphabetical order
        out = "".join(sorted(c for c in set(lhs) - {","} if lhs.count(c) == 1))
    return ins, out


class Einsum(Function):
    """``xp.einsum`` over explicit subscripts; the gradient of operand ``i`` is the
    einsum of ``gy`` with the other operands, broadcast along letters only it names."""

    def __init__(self, ins: list[str], out: str):
        self.ins, self.out = ins, out

    def forward(self, *xs):
        self.xs = xs
        return get_xp(*xs).einsum(",".join(self.ins) + "->" + self.out, *xs)

    def backward(self, gy):
        xp = get_xp(gy)
        grads = []
        for i, (sub, x) in enumerate(zip(self.ins, self.xs, strict=True)):
            if not self.needs_input_grad[i]:
                grads.append(None)
                continue
            if len(set(sub)) != len(sub):
                raise NotImplementedError(
                    f"einsum: no gradient for a letter repeated within one operand "
                    f"(a diagonal). Received: operand subscripts {sub!r}"
                )
            others = [s for j, s in enumerate(self.ins) if j != i]
            seen = set(self.out).union(*others)
            kept = "".join(c for c in sub if c in seen)
            spec = ",".join([self.out, *others]) + "->" + kept
            g = xp.einsum(spec, gy, *(o for j, o in enumerate(self.xs) if j != i))
            # letters only this operand names were summed out: their gradient is constant
            g = g.reshape([x.shape[k] if c in seen else 1 for k, c in enumerate(sub)])
            grads.append(xp.broadcast_to(g, x.shape).astype(x.dtype, copy=False))
        return tuple(grads)


def cumsum(a, axis: int) -> Tensor:
    """The cumulative sum of ``a`` along ``axis``."""
    return CumSum(axis)(a)


def einsum(subscripts: str, *operands) -> Tensor:
    """Einstein summation over ``subscripts`` such as ``"ij,jk->ik"`` (letters only)."""
    ins, out = parse_subscripts(subscripts, len(operands))
    return Einsum(ins, out)(*operands)
