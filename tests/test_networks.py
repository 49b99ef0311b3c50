"""Every registered network under every method that applies to it (timm's one test over every registered name), and
what the networks of issue #25 promise: torchvision's stages as modules, ResNet-110 cut at block granularity, a ViT's
token grid, RGB data at the size a network asks for, and one-line refusals."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from gimbench.cli import compare_rows, make_parser
from gimbench.config import ConfigError, RunConfig, config_from, resolve
from gimbench.data import make_source
from gimbench.losses import Classifier, GridInfoNCE, VisionInfoNCE
from gimbench.models import NETWORKS, PAPER_NETWORKS
from gimbench.probe import ProbeTask, extract_features, probe
from gimbench.runs.build import build
from gimbench.strategies import STRATEGIES
from gimbench.strategies.local_heads import DglAuxiliary
from gimbench.sweep.grid import configurations
from gimbench.trainer import Trainer

# Single-process variants; the ones that spread modules over processes run under torchrun (test_module_parallel).
VARIANTS = [(name, value) for name, method in sorted(STRATEGIES.items())
            for value, spec in method.variants.items() if not spec.spreads]
NEW = ("resnet18", "resnet50", "resnet110-cifar", "vit")
SLOW = {"resnet50"}  # its tiny build still has torchvision's 64-2048 channels: ~1-2 s a case


def variant_config(network: str, name: str, value: str, **options) -> RunConfig:
    method = STRATEGIES[name]
    chosen = {method.choice: value} if method.choice else {}
    # steps: enough for any schedule's cycle to resolve; the test trains two of them.
    return RunConfig(model=name, network=network, preset="tiny", device="cpu", steps=100, batch_size=2, **chosen,
                     **options)


def applicable(network: str, name: str, value: str) -> bool:
    """Whether the method trains this network: the MFCC front end and --model mfcc only go together."""
    spec = STRATEGIES[name].variants[value]
    return (spec.encoder == "mfcc") == (network == "mfcc") and NETWORKS[network].modality in spec.modalities


CASES = [pytest.param(network, name, value, id=f"{network}-{name}{'-' + value if value else ''}",
                      marks=[pytest.mark.slow] if network in SLOW and (name, value) != ("gim", "per-module") else [])
         for network in sorted(NETWORKS) for name, value in VARIANTS if applicable(network, name, value)]


@pytest.mark.parametrize(("network", "name", "value"), CASES)
def test_every_network_trains_under_every_method_that_applies(network, name, value):
    cfg = resolve(variant_config(network, name, value))
    parts = build(cfg)
    before = [p.detach().clone() for p in parts.network.parameters()]
    history = Trainer(parts, cfg.batch_size, cfg.seed).fit(2)
    assert len(parts.network) == (cfg.modules or cfg.depth)
    assert all(len(losses) == len(parts.network) for losses in history.losses)
    assert all(math.isfinite(v) for losses in history.losses for v in losses if v is not None)
    moved = any(not torch.equal(a, b) for a, b in zip(before, parts.network.parameters(), strict=True))
    assert moved == any(o is not None for o in parts.optimizers)


def test_torchvision_resnets_are_cut_at_their_stages():
    for name in ("resnet18", "resnet50"):
        layers = NETWORKS[name].build("tiny", 5)
        assert layers.names == ["stem", "layer1", "layer2", "layer3", "layer4"]
        assert [type(m).__name__ for m in layers.modules[0]] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    paper = NETWORKS["resnet50"].build("paper", 5)
    assert sum(p.numel() for m in paper.modules for p in m.parameters()) == 23_508_032  # torchvision's, less fc
    assert paper.output_shapes()[-1] == (1, 2048, 3, 3)


def test_resnet110_is_he_et_als_cut_at_every_block():
    paper = NETWORKS["resnet110-cifar"].build("paper", 55)
    assert len(paper.modules) == 55 and paper.names[:3] == ["stem", "layer1.0", "layer1.1"]
    assert paper.names[-1] == "layer3.17"
    assert sum(p.numel() for m in paper.modules for p in m.parameters()) == 1_730_064  # ~1.7M, REFERENCE.md
    assert [s[1:] for s in paper.output_shapes()[::18]] == [(16, 32, 32), (16, 32, 32), (32, 16, 16), (64, 8, 8)]
    entry = NETWORKS["resnet110-cifar"]
    assert (entry.reference_at("paper"), entry.reference_at("tiny")) == (55, 7)


@pytest.mark.parametrize("modules", [2, 3, 4])
def test_resnet110_groups_into_modules_by_block(modules):
    cfg = resolve(variant_config("resnet110-cifar", "greedy-supervised", "", modules=modules))
    network = build(cfg).network
    assert len(network) == modules and sum(len(g) for g in network.layers) == 7
    assert network.names[0].startswith("stem")


def test_a_balanced_split_measures_the_blocks():
    cfg = resolve(variant_config("resnet110-cifar", "gim", "per-module", modules=3, split="balanced"))
    network = build(cfg).network
    assert len(network) == 3 and [i for g in network.layers for i in g] == list(range(7))


def test_a_vit_is_its_patch_embedding_and_blocks_with_heads_on_the_token_grid():
    cfg = resolve(variant_config("vit", "gim", "per-module"))
    network = build(cfg).network
    assert network.names == ["embedding", "encoder_layer_0", "encoder_layer_1", "encoder_layer_2"]
    assert network.tokens and all(isinstance(network.head(k), GridInfoNCE) for k in range(4))
    assert network.head(0).steps == 3  # a 4 x 4 token grid: 3 rows below the first
    supervised = build(resolve(variant_config("vit", "supervised", ""))).network
    assert isinstance(supervised.head(3), Classifier) and supervised.head(3).linear.in_features == 32


def test_the_paper_vision_encoder_keeps_the_paper_loss():
    network = build(resolve(variant_config("gim-vision", "gim", "per-module"))).network
    assert all(type(network.head(k)) is VisionInfoNCE for k in range(3))


@pytest.mark.parametrize("network", NEW)
def test_synthetic_images_come_at_the_size_the_network_reads(network):
    cfg = resolve(RunConfig(network=network, preset="tiny", device="cpu"))
    source = make_source(cfg)
    x, _ = source.batch(2, torch.Generator().manual_seed(0))
    assert tuple(x.shape[1:]) == NETWORKS[network].input_of("tiny") and x.shape[1] == 3
    task = source.probe_tasks()[0]
    assert tuple(task.train_inputs[0].shape) == NETWORKS[network].input_of("tiny")


def test_the_network_implies_the_modality_and_a_wrong_one_is_refused():
    assert resolve(RunConfig(network="resnet18", device="cpu")).modality == "vision"
    assert resolve(RunConfig(device="cpu")).modality == "audio"
    with pytest.raises(ConfigError, match="network 'vit' reads vision; use --modality vision"):
        resolve(RunConfig(network="vit", modality="audio", device="cpu"))
    with pytest.raises(ConfigError, match="'resnet1' is not one of .*nor your own as path/to/file.py:make"):
        resolve(RunConfig(network="resnet1", device="cpu"))


def test_cpc_on_a_new_network_has_no_context_network_unless_asked():
    assert resolve(variant_config("resnet18", "cpc", "none")).context == "none"
    assert resolve(variant_config(PAPER_NETWORKS["vision"], "cpc", "none")).context == "pixelcnn"
    assert resolve(variant_config("vit", "cpc", "none", context="pixelcnn")).context == "pixelcnn"


def test_a_depth_beyond_the_presets_layers_is_refused():
    with pytest.raises(ConfigError, match="--depth must be between 1 and 7, got 8"):
        resolve(RunConfig(network="resnet110-cifar", depth=8, preset="tiny", device="cpu"))
    assert resolve(RunConfig(network="resnet110-cifar", depth=55, preset="paper", device="cpu")).depth == 55



def test_probes_read_a_vits_tokens_pooled():
    cfg = resolve(variant_config("vit", "gim", "per-module"))
    parts = build(cfg)
    task = parts.source.probe_tasks()[0]
    task = ProbeTask(task.name, task.kind, task.train_inputs[:40], task.train_labels[:40], task.test_inputs[:20],
                     task.test_labels[:20], task.num_classes)
    features = extract_features(parts.network, task.train_inputs, "pooled", "cpu")
    assert [tuple(f.shape) for f in features] == [(40, 32)] * 4  # one row per image, the width of the tokens
    result = probe(parts.network, [task], "cpu")["class"]
    assert len(result.per_module) == 4 and all(0 <= a <= 1 for a in result.per_module)


@pytest.mark.slow  # torchrun, two processes
def test_a_resnet_trains_module_parallel_on_two_processes(tmp_path):
    command = [sys.executable, "-m", "gimbench", "run", "--network", "resnet18", "--model", "gim", "--gim-mode",
               "module-parallel", "--nproc", "2", "--preset", "tiny", "--device", "cpu", "--quiet", "--no-probe",
               "--batch-size", "4", "--steps", "4", "--warmup-steps", "1", "--profile-steps", "1", "--memory-steps",
               "1", "--out", str(tmp_path), "--name", "mp"]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads((tmp_path / "mp" / "results.json").read_text())
    assert doc["distributed"]["mode"] == "module-parallel" and len(doc["distributed"]["ranks"]) == 2
    assert [m["name"] for m in doc["modules"]] == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert all(m["memory"]["peak_bytes"] > 0 for m in doc["modules"])


def test_dgls_auxiliary_net_reads_resnet_maps_and_is_refused_on_vit_tokens():
    network = build(resolve(variant_config("resnet110-cifar", "greedy-supervised", "", local_head="dgl"))).network
    assert all(isinstance(network.head(k), DglAuxiliary) for k in range(len(network)))
    with pytest.raises(ConfigError, match="--local-head dgl reads image feature maps"):
        build(resolve(variant_config("vit", "greedy-supervised", "", local_head="dgl")))


def test_a_sweep_and_a_comparison_take_networks():
    args = make_parser().parse_args(["sweep", "--network", "resnet18,resnet50", "--model", "gim,cpc",
                                     "--preset", "tiny", "--device", "cpu"])
    configs, swept = configurations(args, args.run_options)
    assert swept == {"model": ["gim", "cpc"], "network": ["resnet18", "resnet50"]}
    assert [resolve(config_from(c.values)).modality for c in configs] == ["vision"] * 4
    rows = compare_rows(make_parser().parse_args(["compare", "--network", "resnet18", "--preset", "tiny",
                                                  "--device", "cpu"]))
    assert {"gim-modules2", "gim-modules3", "gim-modules5"} <= {r.label for r in rows}  # resnet18: 5 layers
    assert all(r.values["network"] == "resnet18" and r.values["context"] == "none" for r in rows)
