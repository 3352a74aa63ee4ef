"""The project's U2NETP against the upstream key layout and the real fixture."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from vmafx_saliency.nets.u2netp import U2NETP, FusedOutput  # noqa: E402

# Written out from upstream's U2NETP(3, 1), independently of the code under test:
# stage -> (block kind, RSU height).
STAGES = {
    "stage1": ("RSU", 7),
    "stage2": ("RSU", 6),
    "stage3": ("RSU", 5),
    "stage4": ("RSU", 4),
    "stage5": ("RSU4F", 4),
    "stage6": ("RSU4F", 4),
    "stage5d": ("RSU4F", 4),
    "stage4d": ("RSU", 4),
    "stage3d": ("RSU", 5),
    "stage2d": ("RSU", 6),
    "stage1d": ("RSU", 7),
}
REBNCONV_TENSORS = (
    "conv_s1.weight",
    "conv_s1.bias",
    "bn_s1.weight",
    "bn_s1.bias",
    "bn_s1.running_mean",
    "bn_s1.running_var",
    "bn_s1.num_batches_tracked",
)
N_TENSORS = 798
N_PARAMS = 1_131_181


def expected_keys() -> list[str]:
    keys = []
    for stage, (_kind, height) in STAGES.items():
        convs = ["rebnconvin"]
        convs += [f"rebnconv{i}" for i in range(1, height + 1)]
        convs += [f"rebnconv{i}d" for i in range(height - 1, 0, -1)]
        keys += [f"{stage}.{conv}.{t}" for conv in convs for t in REBNCONV_TENSORS]
    for head in [f"side{i}" for i in range(1, 7)] + ["outconv"]:
        keys += [f"{head}.weight", f"{head}.bias"]
    return keys


@pytest.fixture(scope="module")
def fixture_state(checkpoint_path: Path) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    return state


@pytest.fixture(scope="module")
def loaded_net(fixture_state: dict[str, Any]) -> Any:
    net = U2NETP(3, 1)
    net.load_state_dict(fixture_state, strict=True)
    return net.eval()


def test_expectations_are_self_consistent() -> None:
    keys = expected_keys()
    assert len(keys) == len(set(keys)) == N_TENSORS
    per_stage = collections.Counter(k.split(".")[0] for k in keys)
    # RSU-L holds 2L REBNCONVs, RSU-4F eight; seven tensors each.
    assert per_stage["stage1"] == per_stage["stage1d"] == 14 * 7
    assert per_stage["stage4"] == per_stage["stage5"] == per_stage["stage5d"] == 8 * 7


def test_state_dict_layout_equals_upstream() -> None:
    assert list(U2NETP(3, 1).state_dict()) == expected_keys()


def test_fixture_loads_strictly(fixture_state: dict[str, Any], loaded_net: Any) -> None:
    assert len(fixture_state) == N_TENSORS
    assert set(fixture_state) == set(expected_keys())
    assert sum(p.numel() for p in loaded_net.parameters()) == N_PARAMS
    trainable = sum(
        v.numel()
        for k, v in fixture_state.items()
        if not k.split(".")[-1].startswith(("running", "num_"))
    )
    assert trainable == N_PARAMS


def expected_dilations() -> dict[str, int]:
    rsu4f = {"in": 1, "1": 1, "2": 2, "3": 4, "4": 8, "3d": 4, "2d": 2, "1d": 1}
    out: dict[str, int] = {}
    for stage, (kind, height) in STAGES.items():
        if kind == "RSU4F":
            levels = rsu4f
        else:
            levels = {"in": 1, **{str(i): 1 for i in range(1, height)}, str(height): 2}
            levels |= {f"{i}d": 1 for i in range(1, height)}
        out |= {f"{stage}.rebnconv{lvl}.conv_s1": d for lvl, d in levels.items()}
    return out | {f"side{i}": 1 for i in range(1, 7)} | {"outconv": 1}


def test_dilations_and_pools_follow_upstream() -> None:
    net = U2NETP(3, 1)
    dilations = {
        name: m.dilation for name, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)
    }
    assert dilations == {name: (d, d) for name, d in expected_dilations().items()}
    pools = [m for m in net.modules() if isinstance(m, torch.nn.MaxPool2d)]
    # 5 between stages + RSU7 5 + RSU6 4 + RSU5 3 + RSU4 2, in encoder and decoder.
    assert len(pools) == 5 + 2 * (5 + 4 + 3 + 2)
    assert all(p.ceil_mode and p.kernel_size == 2 and p.stride == 2 for p in pools)


@pytest.mark.parametrize("size", [(320, 320), (75, 133)])
def test_side_outputs_have_the_input_size(loaded_net: Any, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        outputs = loaded_net(x)
    assert len(outputs) == 7
    for d in outputs:
        assert tuple(d.shape) == (1, 1, *size)
        assert torch.isfinite(d).all()
        assert float(d.min()) >= 0.0
        assert float(d.max()) <= 1.0


def test_fused_output_selects_d0(loaded_net: Any) -> None:
    torch.manual_seed(1)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        d0 = loaded_net(x)[0]
        fused = FusedOutput(loaded_net).eval()(x)
    assert tuple(fused.shape) == (1, 1, 64, 96)
    torch.testing.assert_close(fused, d0, rtol=0, atol=1e-7)
