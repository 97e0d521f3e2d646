"""``hpnn cluster`` on a few hundred Fashion-MNIST images (seconds)."""

import re
from pathlib import Path

import pytest

from hpnn import cli
from hpnn.cluster import cli as cluster_cli

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_data = pytest.mark.skipif(
    not FASHION.is_dir(), reason=f"Fashion-MNIST is not installed in {FASHION}"
)
SCORES = r"ACC ([0-9.]+)  NMI ([0-9.]+)  ARI (-?[0-9.]+)"


@needs_data
def test_cluster_prints_the_scores_of_dec_and_kmeans(capsys):
    argv = ["--samples", "400", "--test-samples", "300", "--pretrain-epochs", "1"]
    argv += ["--max-iter", "3", "--verbose", "0"]
    assert cluster_cli.cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "Fitting on 400 training images; scoring on 300 test images" in out
    km = re.search(r"k-means \(pixels\): " + SCORES + r"  \(([0-9.]+) s\)", out)
    dec = re.search(r"DEC: +" + SCORES + r"  \(([0-9.]+) s: pretrain", out)
    assert km and dec, out
    for m in (km, dec):
        acc, nmi, _, _ = map(float, m.groups())
        assert 0.2 < acc <= 1 and 0.1 < nmi <= 1  # chance: ACC about 0.1, NMI about 0
    assert re.search(r"DEC's refinement: [0-3] steps", out)


@needs_data
def test_cluster_rejects_a_bad_sample_count(capsys):
    assert cli.main(["cluster", "--samples", "0"]) == 2
    assert "--samples must be in [1, 60000]. Received: 0" in capsys.readouterr().err


def test_cluster_is_a_subcommand(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["cluster", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--samples" in out and "--pretrain-epochs" in out
