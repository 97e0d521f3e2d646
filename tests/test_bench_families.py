"""benchmarks/families.py at a tiny size: every family builds on both sides with equal
parameter counts, trains one step through the benchmark's own functions, and gives the
output shape it should (so the benchmark cannot rot unnoticed)."""

import importlib.util
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks", "families.py")


@pytest.fixture(scope="module")
def families():
    spec = importlib.util.spec_from_file_location("bench_families", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


FAMILIES = ["resnet", "vgg", "textcnn", "transformer", "bilstm", "autoencoder"]
BATCH = 4


def test_the_benchmark_lists_the_six_families(families):
    assert list(families.FAMILIES) == FAMILIES


@pytest.mark.parametrize("family", FAMILIES)
def test_one_step_of_each_side_at_a_tiny_size(families, family):
    pair = families.setup(family, BATCH, 2 * BATCH, tiny=True, warm=False)
    p = pair.params
    assert p["hpnn"] == p["torch"] > 0
    for run_pass in (pair.hpnn_pass, pair.torch_pass):
        n, seconds, own, others = families.timed(run_pass)  # as the benchmark times a pass
        assert n == 2 * BATCH and seconds > 0 and own >= 0 and others >= 0

    cfg = families.config(family, tiny=True)
    x, y = families.make_data(family, cfg, BATCH)
    expected = families.output_shape(family, cfg, BATCH)
    model = families.build_hpnn(family, cfg)
    assert families.hpnn_fit(model, x, y, BATCH) == BATCH
    out = model.predict(x, verbose=0)
    assert out.shape == expected and np.isfinite(out).all()

    net, opt, loss_fn = families.build_torch(family, cfg)
    assert families.torch_param_count(net)[1] == model.count_params()
    batches = families.torch_batches(family, x, y, BATCH)
    assert families.torch_train(net, opt, loss_fn, batches) == BATCH
    with torch.no_grad():
        out = net(batches[0][0])
    assert tuple(out.shape) == expected and torch.isfinite(out).all()


def test_lstm_counts_leave_out_torchs_second_bias(families):
    cfg = families.config("bilstm", tiny=True)
    net, _, _ = families.build_torch("bilstm", cfg)
    raw, keras = families.torch_param_count(net)
    assert raw - keras == 2 * 4 * cfg["units"]  # bias_hh of both directions


def test_arguments(families):
    args = families.parse_args(["--families", "vgg,bilstm", "--repeats", "2"])
    assert args.families == ["vgg", "bilstm"] and args.repeats == 2 and args.batch_size == 64
    with pytest.raises(SystemExit):
        families.parse_args(["--families", "nope"])
