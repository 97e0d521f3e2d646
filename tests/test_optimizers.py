"""Tests for hpnn.optimizers: update rules against Keras 3 formulas in NumPy and torch.optim."""

import math

import numpy as np
import pytest

import hpnn
from hpnn import layers, optimizers
from hpnn.engine.variable import Variable

STEPS = 7


# -- a small quadratic: f(w) = 0.5 * sum(a * (w - c)^2), grad = a * (w - c) -----------------

A = np.array([[1.0, 3.0, 0.5], [2.0, 0.1, 4.0]])
C = np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]])
W0 = np.array([[1.0, 2.0, -1.0], [0.0, -2.0, 0.3]])


def grad(w):
    return A * (w - C)


def run_hpnn(opt, steps=STEPS, w0=W0):
    """Apply ``steps`` updates; return the float32 weights after each step."""
    v = Variable(w0.astype(np.float32))
    out = []
    for _ in range(steps):
        opt.apply([grad(v.numpy().astype(np.float64)).astype(np.float32)], [v])
        out.append(v.numpy().copy())
    return v, out


# -- Keras 3 update rules written out -----------------------------------------------------


def ref_sgd(lr=0.01, momentum=0.0, nesterov=False, wd=None, steps=STEPS):
    w, m, out = W0.copy(), np.zeros_like(W0), []
    for _ in range(steps):
        g = grad(w)
        if wd:
            w = w * (1 - lr * wd)
        if momentum:
            m = momentum * m - lr * g
            w = w + (momentum * m - lr * g if nesterov else m)
        else:
            w = w - lr * g
        out.append(w)
    return out


def ref_rmsprop(lr=0.001, rho=0.9, momentum=0.0, eps=1e-7, centered=False, steps=STEPS):
    w, vel, mom, avg, out = W0.copy(), np.zeros_like(W0), np.zeros_like(W0), np.zeros_like(W0), []
    for _ in range(steps):
        g = grad(w)
        vel = rho * vel + (1 - rho) * g * g
        if centered:
            avg = rho * avg + (1 - rho) * g
            denom = vel - avg * avg + eps
        else:
            denom = vel + eps
        inc = lr * g / np.sqrt(denom)  # epsilon inside the square root
        if momentum:
            mom = momentum * mom + inc
            w = w - mom
        else:
            w = w - inc
        out.append(w)
    return out


def ref_adam(lr=0.001, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False, wd=None, steps=STEPS):
    w, m, v, vhat, out = W0.copy(), np.zeros_like(W0), np.zeros_like(W0), np.zeros_like(W0), []
    for t in range(1, steps + 1):
        g = grad(w)
        if wd:
            w = w * (1 - lr * wd)
        lr_t = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        if amsgrad:
            vhat = np.maximum(vhat, v)
            w = w - lr_t * m / (np.sqrt(vhat) + eps)
        else:
            w = w - lr_t * m / (np.sqrt(v) + eps)
        out.append(w)
    return out


def ref_adagrad(lr=0.001, init=0.1, eps=1e-7, steps=STEPS):
    w, acc, out = W0.copy(), np.full_like(W0, init), []
    for _ in range(steps):
        g = grad(w)
        acc = acc + g * g
        w = w - lr * g / np.sqrt(acc + eps)
        out.append(w)
    return out


def ref_adamax(lr=0.001, b1=0.9, b2=0.999, eps=1e-7, steps=STEPS):
    w, m, u, out = W0.copy(), np.zeros_like(W0), np.zeros_like(W0), []
    for t in range(1, steps + 1):
        g = grad(w)
        m = m + (g - m) * (1 - b1)
        u = np.maximum(b2 * u, np.abs(g))
        w = w - lr * m / ((1 - b1**t) * (u + eps))
        out.append(w)
    return out


def ref_nadam(lr=0.001, b1=0.9, b2=0.999, eps=1e-7, steps=STEPS):
    w, m, v, prod, out = W0.copy(), np.zeros_like(W0), np.zeros_like(W0), 1.0, []
    for t in range(1, steps + 1):
        g = grad(w)
        u_t, u_next = b1 * (1 - 0.5 * 0.96**t), b1 * (1 - 0.5 * 0.96 ** (t + 1))
        prod = prod * u_t
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        m_hat = u_next * m / (1 - prod * u_next) + (1 - u_t) * g / (1 - prod)
        w = w - lr * m_hat / (np.sqrt(v / (1 - b2**t)) + eps)
        out.append(w)
    return out


def ref_adadelta(lr=0.001, rho=0.95, eps=1e-7, steps=STEPS):
    w, ag, ad, out = W0.copy(), np.zeros_like(W0), np.zeros_like(W0), []
    for _ in range(steps):
        g = grad(w)
        ag = rho * ag + (1 - rho) * g * g
        delta = -np.sqrt(ad + eps) * g / np.sqrt(ag + eps)
        ad = rho * ad + (1 - rho) * delta * delta
        w = w + lr * delta
        out.append(w)
    return out


CASES = {
    "adagrad": (lambda: optimizers.Adagrad(0.1), lambda: ref_adagrad(0.1)),
    "adagrad_init": (
        lambda: optimizers.Adagrad(0.1, initial_accumulator_value=1.0, epsilon=1e-3),
        lambda: ref_adagrad(0.1, init=1.0, eps=1e-3),
    ),
    "adamax": (lambda: optimizers.Adamax(0.05), lambda: ref_adamax(0.05)),
    "adamax_betas": (
        lambda: optimizers.Adamax(0.05, beta_1=0.5, beta_2=0.9, epsilon=1e-2),
        lambda: ref_adamax(0.05, b1=0.5, b2=0.9, eps=1e-2),
    ),
    "nadam": (lambda: optimizers.Nadam(0.05), lambda: ref_nadam(0.05)),
    "nadam_betas": (
        lambda: optimizers.Nadam(0.05, beta_1=0.5, beta_2=0.9, epsilon=1e-2),
        lambda: ref_nadam(0.05, b1=0.5, b2=0.9, eps=1e-2),
    ),
    "adadelta": (lambda: optimizers.Adadelta(1.0), lambda: ref_adadelta(1.0)),
    "adadelta_rho": (
        lambda: optimizers.Adadelta(1.0, rho=0.5, epsilon=1e-4),
        lambda: ref_adadelta(1.0, rho=0.5, eps=1e-4),
    ),
    "sgd": (lambda: optimizers.SGD(0.05), lambda: ref_sgd(0.05)),
    "sgd_momentum": (
        lambda: optimizers.SGD(0.05, momentum=0.9),
        lambda: ref_sgd(0.05, momentum=0.9),
    ),
    "sgd_nesterov": (
        lambda: optimizers.SGD(0.05, momentum=0.8, nesterov=True),
        lambda: ref_sgd(0.05, momentum=0.8, nesterov=True),
    ),
    "sgd_weight_decay": (
        lambda: optimizers.SGD(0.05, weight_decay=0.5),
        lambda: ref_sgd(0.05, wd=0.5),
    ),
    "rmsprop": (lambda: optimizers.RMSprop(0.01), lambda: ref_rmsprop(0.01)),
    "rmsprop_big_eps": (
        lambda: optimizers.RMSprop(0.01, epsilon=0.1),
        lambda: ref_rmsprop(0.01, eps=0.1),
    ),
    "rmsprop_momentum": (
        lambda: optimizers.RMSprop(0.01, rho=0.8, momentum=0.5, epsilon=1e-2),
        lambda: ref_rmsprop(0.01, rho=0.8, momentum=0.5, eps=1e-2),
    ),
    "rmsprop_centered": (
        lambda: optimizers.RMSprop(0.01, centered=True, epsilon=1e-3),
        lambda: ref_rmsprop(0.01, centered=True, eps=1e-3),
    ),
    "rmsprop_centered_momentum": (
        lambda: optimizers.RMSprop(0.01, momentum=0.9, centered=True),
        lambda: ref_rmsprop(0.01, momentum=0.9, centered=True),
    ),
    "adam": (lambda: optimizers.Adam(0.05), lambda: ref_adam(0.05)),
    "adam_betas": (
        lambda: optimizers.Adam(0.05, beta_1=0.5, beta_2=0.9, epsilon=1e-2),
        lambda: ref_adam(0.05, b1=0.5, b2=0.9, eps=1e-2),
    ),
    "adam_amsgrad": (
        lambda: optimizers.Adam(0.05, amsgrad=True),
        lambda: ref_adam(0.05, amsgrad=True),
    ),
    "adamw": (lambda: optimizers.AdamW(0.05, weight_decay=0.1), lambda: ref_adam(0.05, wd=0.1)),
    "adamw_default_decay": (lambda: optimizers.AdamW(0.05), lambda: ref_adam(0.05, wd=0.004)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_update_rule_matches_keras_formulas(name):
    make, ref = CASES[name]
    _, got = run_hpnn(make())
    expected = ref()
    for step, (g, e) in enumerate(zip(got, expected, strict=True)):
        np.testing.assert_allclose(g, e, rtol=2e-5, atol=2e-6, err_msg=f"{name} step {step + 1}")
    # the weights really moved (a no-op optimizer would fail above, but say so plainly)
    assert not np.allclose(got[-1], W0)


def test_amsgrad_differs_from_adam_when_gradients_shrink():
    # amsgrad only matters once v decreases; a falling gradient makes it so
    w0 = np.array([[1.0]])
    plain, ams = Variable(w0.astype(np.float32)), Variable(w0.astype(np.float32))
    o1, o2 = optimizers.Adam(0.1, beta_2=0.5), optimizers.Adam(0.1, beta_2=0.5, amsgrad=True)
    for g in [10.0, 10.0, 0.1, 0.1, 0.1]:
        o1.apply([np.array([[g]], np.float32)], [plain])
        o2.apply([np.array([[g]], np.float32)], [ams])
    assert not np.allclose(plain.numpy(), ams.numpy())


def test_learning_rate_schedule_is_evaluated_at_iterations():
    seen = []

    def schedule(step):
        seen.append(step)
        return 0.1 / (1 + step)

    opt = optimizers.SGD(schedule)
    v = Variable(np.array([1.0], np.float32))
    for _ in range(3):
        opt.apply([np.array([1.0], np.float32)], [v])
    assert opt.iterations == 3
    assert seen[:3] == [0, 1, 2]
    np.testing.assert_allclose(v.numpy(), [1.0 - 0.1 - 0.05 - 0.1 / 3], rtol=1e-6)


def test_keras_defaults():
    assert optimizers.SGD().learning_rate == pytest.approx(0.01)
    assert optimizers.Adam().learning_rate == pytest.approx(0.001)
    assert optimizers.Adam().epsilon == pytest.approx(1e-7)
    assert optimizers.RMSprop().learning_rate == pytest.approx(0.001)
    assert optimizers.RMSprop().rho == pytest.approx(0.9)
    assert optimizers.AdamW().weight_decay == pytest.approx(0.004)


# -- against torch.optim -----------------------------------------------------------------
# torch adds eps outside sqrt(v / bias_correction2) (Adam) and outside sqrt(v) (RMSprop),
# Keras inside the bias-corrected step / inside the root: with eps=0 the rules coincide.

TORCH_CASES = {
    "sgd": (lambda: optimizers.SGD(0.05), lambda t, p: t.optim.SGD(p, lr=0.05)),
    "sgd_momentum": (
        lambda: optimizers.SGD(0.05, momentum=0.9),
        lambda t, p: t.optim.SGD(p, lr=0.05, momentum=0.9),
    ),
    "sgd_nesterov": (
        lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
        lambda t, p: t.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    ),
    "adam": (
        lambda: optimizers.Adam(0.05, epsilon=0.0),
        lambda t, p: t.optim.Adam(p, lr=0.05, eps=0.0),
    ),
    "adam_amsgrad": (
        lambda: optimizers.Adam(0.05, epsilon=0.0, amsgrad=True),
        lambda t, p: t.optim.Adam(p, lr=0.05, eps=0.0, amsgrad=True),
    ),
    "adamw": (
        lambda: optimizers.AdamW(0.05, weight_decay=0.1, epsilon=0.0),
        lambda t, p: t.optim.AdamW(p, lr=0.05, weight_decay=0.1, eps=0.0),
    ),
    "rmsprop": (
        lambda: optimizers.RMSprop(0.01, epsilon=0.0),
        lambda t, p: t.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=0.0),
    ),
    "rmsprop_centered_momentum": (
        lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True, epsilon=0.0),
        lambda t, p: t.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=0.0, momentum=0.5, centered=True),
    ),
}


@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_against_torch_optim(name):
    torch = pytest.importorskip("torch")
    make, make_torch = TORCH_CASES[name]
    _, got = run_hpnn(make())
    p = torch.nn.Parameter(torch.tensor(W0, dtype=torch.float64))
    opt = make_torch(torch, [p])
    for step in range(STEPS):
        opt.zero_grad()
        p.grad = torch.tensor(grad(p.detach().numpy()))
        opt.step()
        np.testing.assert_allclose(
            got[step], p.detach().numpy(), rtol=2e-5, atol=2e-6, err_msg=f"{name} step {step + 1}"
        )


# -- gradients untouched, aliasing, clipping ------------------------------------------------

ALL = [
    lambda: optimizers.SGD(0.1),
    lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    lambda: optimizers.RMSprop(0.1, momentum=0.5, centered=True),
    lambda: optimizers.Adam(0.1, amsgrad=True),
    lambda: optimizers.AdamW(0.1),
    lambda: optimizers.SGD(0.1, clipnorm=0.5),
    lambda: optimizers.Adam(0.1, clipvalue=0.1),
    lambda: optimizers.RMSprop(0.1, global_clipnorm=0.5),
]


@pytest.mark.parametrize("make", ALL)
def test_apply_never_modifies_gradients(make):
    opt = make()
    v1 = Variable(W0.astype(np.float32))
    v2 = Variable(W0.astype(np.float32) * 2)
    g = grad(W0).astype(np.float32)
    g_copy = g.copy()
    for _ in range(3):
        opt.apply([g, g], [v1, v2])  # the same array for both: gradients may alias
        np.testing.assert_array_equal(g, g_copy)
    # the aliased gradient gave v2 the same updates as a private copy would
    opt2 = make()
    w1 = Variable(W0.astype(np.float32))
    w2 = Variable(W0.astype(np.float32) * 2)
    for _ in range(3):
        opt2.apply([g.copy(), g.copy()], [w1, w2])
    np.testing.assert_array_equal(v1.numpy(), w1.numpy())
    np.testing.assert_array_equal(v2.numpy(), w2.numpy())


def test_clipvalue():
    opt = optimizers.SGD(1.0, clipvalue=0.5)
    v = Variable(np.zeros(4, np.float32))
    opt.apply([np.array([2.0, -3.0, 0.25, -0.5], np.float32)], [v])
    np.testing.assert_allclose(v.numpy(), [-0.5, 0.5, -0.25, 0.5])


def test_clipnorm_is_per_gradient():
    opt = optimizers.SGD(1.0, clipnorm=1.0)
    a, b = Variable(np.zeros(2, np.float32)), Variable(np.zeros(2, np.float32))
    opt.apply([np.array([3.0, 4.0], np.float32), np.array([0.3, 0.4], np.float32)], [a, b])
    np.testing.assert_allclose(a.numpy(), [-0.6, -0.8], rtol=1e-6)  # norm 5 -> 1
    np.testing.assert_allclose(b.numpy(), [-0.3, -0.4], rtol=1e-6)  # norm 0.5: unchanged


def test_global_clipnorm_scales_all_gradients_together():
    opt = optimizers.SGD(1.0, global_clipnorm=1.0)
    a, b = Variable(np.zeros(2, np.float32)), Variable(np.zeros(1, np.float32))
    ga, gb = np.array([3.0, 0.0], np.float32), np.array([4.0], np.float32)  # global norm 5
    opt.apply([ga, gb], [a, b])
    np.testing.assert_allclose(a.numpy(), [-0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(b.numpy(), [-0.8], rtol=1e-6)
    opt.apply([ga * 0.01, gb * 0.01], [a, b])  # under the norm: unchanged
    np.testing.assert_allclose(b.numpy(), [-0.84], rtol=1e-6)


def test_only_one_clip_option():
    with pytest.raises(ValueError, match="clipnorm"):
        optimizers.SGD(clipnorm=1.0, clipvalue=1.0)


def test_none_gradient_skips_the_variable():
    opt = optimizers.Adam(0.1)
    a, b = Variable(np.ones(2, np.float32)), Variable(np.ones(2, np.float32))
    opt.apply([None, np.ones(2, np.float32)], [a, b])
    np.testing.assert_array_equal(a.numpy(), [1.0, 1.0])
    assert not np.allclose(b.numpy(), 1.0)


def test_apply_gradients_zip_form():
    opt = optimizers.SGD(0.5)
    v = Variable(np.array([1.0, 2.0], np.float32))
    opt.apply_gradients(zip([np.array([1.0, 1.0], np.float32)], [v], strict=True))
    np.testing.assert_allclose(v.numpy(), [0.5, 1.5])


# -- dtypes ------------------------------------------------------------------------------


@pytest.mark.parametrize("make", ALL)
def test_state_and_weights_stay_float32_with_float64_gradients(make):
    opt = make()
    v = Variable(W0.astype(np.float32))
    for _ in range(3):
        opt.apply([grad(W0)], [v])  # float64 gradients
    assert v.dtype == np.float32
    assert all(s.dtype == np.float32 for s in opt.variables())
    assert all(s.dtype == np.float32 for slots in opt._slots.values() for s in slots.values())


# -- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("sgd", optimizers.SGD),
        ("adam", optimizers.Adam),
        ("rmsprop", optimizers.RMSprop),
        ("adamw", optimizers.AdamW),
        ("Adam", optimizers.Adam),
        ("adagrad", optimizers.Adagrad),
        ("adamax", optimizers.Adamax),
        ("nadam", optimizers.Nadam),
        ("adadelta", optimizers.Adadelta),
    ],
)
def test_string_names_in_compile(name, cls):
    model = hpnn.Sequential([hpnn.Input((3,)), layers.Dense(2)])
    model.compile(optimizer=name, loss="mse")
    assert type(model.optimizer) is cls
    w = model.get_weights()[0]
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=1, verbose=0)
    assert not np.array_equal(model.get_weights()[0], w)


def test_unknown_optimizer_name_raises():
    with pytest.raises(ValueError, match=r"Unknown optimizer.*Received: optimizer='adamm'"):
        optimizers.get("adamm")
    model = hpnn.Sequential([hpnn.Input((3,)), layers.Dense(2)])
    with pytest.raises(ValueError, match=r"optimizer='sgdd'"):
        model.compile(optimizer="sgdd", loss="mse")


def test_bad_learning_rate_and_momentum():
    with pytest.raises(ValueError, match=r"learning_rate.*Received: learning_rate="):
        optimizers.Adam(learning_rate=-1.0)
    with pytest.raises(ValueError, match=r"learning_rate.*Received"):
        optimizers.SGD(learning_rate=float("nan"))
    with pytest.raises(ValueError, match=r"momentum.*Received: momentum=1.5"):
        optimizers.SGD(momentum=1.5)
    with pytest.raises(TypeError, match="unexpected keyword"):
        optimizers.Adam(lr=0.1)


def test_variables_are_c_contiguous_whatever_order_they_come_in():
    # An orthogonal initialiser's QR is F-ordered; a variable holding it in that order
    # would miss the compiled update (and ran Adam's NumPy code, ~20x slower).
    v = Variable(np.asfortranarray(W0.astype(np.float32)))
    assert v.data.flags.c_contiguous
    np.testing.assert_array_equal(v.data, W0.astype(np.float32))
    assert Variable(np.float32(2.0)).data.shape == ()  # 0-d stays 0-d
    model = hpnn.Sequential([hpnn.Input((5, 3)), layers.LSTM(4, return_sequences=True)])
    model.add(layers.GRU(2))
    model.add(layers.Dense(2))
    assert model.weights and all(w.data.flags.c_contiguous for w in model.weights)


def test_nadam_resumes_its_momentum_schedule_after_a_restore():
    # the product of the momentum schedule is carried step to step; an optimizer whose
    # state was restored (iterations set) recomputes it and continues exactly
    whole, _ = run_hpnn(optimizers.Nadam(0.05), steps=6)
    first = optimizers.Nadam(0.05)
    v, _ = run_hpnn(first, steps=3)
    second = optimizers.Nadam(0.05)
    second.build([v])
    second.set_state(first.iterations, [a.copy() for a in first.variables()])
    for _ in range(3):
        second.apply([grad(v.numpy().astype(np.float64)).astype(np.float32)], [v])
    np.testing.assert_allclose(v.numpy(), whole.numpy(), rtol=1e-6)


def test_lion_steps_by_the_sign():
    w = hpnn.engine.variable.Variable(np.array([1.0, -2.0, 0.5], np.float32))
    opt = hpnn.optimizers.get("lion")
    opt.learning_rate = 0.1
    g = np.array([0.3, -4.0, 0.0], np.float32)
    opt.apply([g], [w])  # m = 0: sign((1 - b1) g)
    np.testing.assert_allclose(w.numpy(), [0.9, -1.9, 0.5])
    np.testing.assert_allclose(opt.variables()[0], 0.01 * g)  # m = (1 - b2) g
    opt.apply([-g], [w])  # sign(b1 m - (1 - b1) g) = sign(0.009 g - 0.1 g) = -sign(g)
    np.testing.assert_allclose(w.numpy(), [1.0, -2.0, 0.5], rtol=1e-6)
    with pytest.raises(ValueError, match="beta_1 and beta_2 must be in"):
        hpnn.optimizers.Lion(beta_1=1.5)


@pytest.mark.parametrize("name", ["adam", "sgd", "rmsprop"])
def test_a_gradient_given_as_a_pair_is_their_sum_exactly(name):
    """What shared-weight MPI training passes: (this rank's rows, the other rank's);
    Adam adds them inside its compiled step, the others first: the same numbers."""
    hpnn.engine.kernels.warm_up()
    rng = np.random.default_rng(0)
    g1, g2 = (rng.normal(size=(6, 5)).astype(np.float32) for _ in range(2))
    w0 = rng.normal(size=(6, 5)).astype(np.float32)
    a, b = Variable(w0.copy()), Variable(w0.copy())
    opt_a, opt_b = optimizers.get(name), optimizers.get(name)
    for _ in range(3):
        opt_a.apply([(g1, g2)], [a])
        opt_b.apply([g1 + g2], [b])
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    for sa, sb in zip(opt_a.variables(), opt_b.variables(), strict=True):
        np.testing.assert_array_equal(sa, sb)
    clipped = optimizers.Adam(clipnorm=0.1)
    clipped.apply([(g1, g2)], [Variable(w0.copy())])  # clipping needs the sum first: works
