"""``--local-head``: the pooled linear classifier by default, DGL's auxiliary net as the option, for the methods
trained on labels only."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from gimbench import ConfigError, RunConfig, run
from gimbench.cli import main
from gimbench.config import resolve
from gimbench.losses import Classifier
from gimbench.strategies.heads import build_network
from gimbench.strategies.local_heads import DglAuxiliary


def test_dgl_head_is_dgls_mlp_sr_net():
    head = DglAuxiliary(channels=8, classes=10, side=(16, 16))
    convs = [m for m in head.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.bias) for c in convs] == [(8, 8, (1, 1), None)] * 3
    assert [(m.in_features, m.out_features) for m in linears] == [(32, 32)] * 3 + [(32, 10)]
    assert head.reduced == (4, 4)  # a quarter of the side before the 1x1 convs
    out = torch.randn(6, 8, 16, 16, requires_grad=True)
    loss = head(None, out, torch.arange(6) % 10)
    loss.backward()
    assert loss.dim() == 0 and out.grad.abs().sum() > 0


def test_patch_features_are_averaged_per_image():
    head = DglAuxiliary(channels=4, classes=3, side=(4, 4), patches=9).eval()
    out, labels = torch.randn(2 * 9, 4, 4, 4), torch.tensor([0, 2])
    shuffled = torch.cat([out[:9][torch.randperm(9)], out[9:]])  # the order of an image's patches does not matter
    assert torch.allclose(head(None, out, labels), head(None, shuffled, labels), atol=1e-6)


@pytest.mark.parametrize("local_head,kind", [("linear", Classifier), ("dgl", DglAuxiliary)])
def test_build_network_puts_the_chosen_head_on_every_greedy_module(local_head, kind):
    network = build_network(network="gim-vision", preset="tiny", depth=2, heads_on=[0, 1], context="none", classes=10,
                            local_head=local_head)
    assert [type(network.head(k)) for k in range(2)] == [kind, kind]


def test_a_dgl_run_records_its_head(tmp_path):
    cfg = RunConfig(model="greedy-supervised", modality="vision", local_head="dgl", preset="tiny", device="cpu",
                    depth=1, steps=2, warmup_steps=1, profile_steps=1, memory_steps=0, batch_size=2, quiet=True,
                    probe=False, out=str(tmp_path), name="dgl")
    result = run(cfg)
    doc = json.loads((tmp_path / "dgl" / "results.json").read_text())
    assert doc["config"]["local_head"] == "dgl"
    linear = run(RunConfig(**{**cfg.to_dict(), "local_head": "linear", "name": "linear"}))
    assert result.modules[0].parameters > linear.modules[0].parameters  # the auxiliary net's own parameters


@pytest.mark.parametrize("args,message", [
    (["--model", "gim", "--local-head", "dgl"], "--local-head dgl applies to --model greedy-supervised or "
                                                "--model supervised only"),
    (["--model", "supervised", "--local-head", "dgl"], "--local-head dgl reads image feature maps"),
    (["--model", "supervised", "--modality", "vision", "--local-head", "dgl", "--batch-size", "1"],
     "needs at least 2 examples"),
    (["--model", "supervised", "--modality", "vision", "--local-head", "dgl", "--find-max-batch", "--memory-budget",
      "1GiB"], "the search starts at batch size 1"),
])
def test_local_head_mistakes_are_one_line(tmp_path, capsys, args, message):
    assert main(["run", "--device", "cpu", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not list(tmp_path.iterdir())


def test_supervised_takes_the_dgl_head_on_its_top_module():
    cfg = resolve(RunConfig(model="supervised", modality="vision", local_head="dgl", device="cpu", preset="tiny"))
    assert cfg.local_head == "dgl"
    with pytest.raises(ConfigError, match="applies to"):
        resolve(RunConfig(model="cpc", modality="vision", local_head="dgl", device="cpu"))
