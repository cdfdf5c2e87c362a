import pytest
import torch

from posedeploy.errors import CheckpointError
from posedeploy.training.models import build_model, count_parameters

MODELS = [
    ("lifter", "htnet", 3_048_489, 3),
    ("lifter", "mgcn_lw", 157_696, 3),
    ("avg", "gcn", 1_099_100, None),
    ("avg", "mlp", 12_049, None),
]


@pytest.mark.parametrize("kind, name, params, coords", MODELS)
def test_parameter_counts_match_the_official_models(kind, name, params, coords):
    assert count_parameters(build_model(kind, name)) == params


@pytest.mark.parametrize("kind, name, params, coords", MODELS)
def test_shapes_at_batch_one_and_batch_independence(kind, name, params, coords):
    torch.manual_seed(0)
    model = build_model(kind, name).eval()
    x = torch.randn(7, 17, 2)
    with torch.no_grad():
        batch = model(x)
        single = model(x[:1])
    assert batch.shape == ((7, 17, coords) if coords else (7, 17))
    assert single.shape == ((1, 17, coords) if coords else (1, 17))  # no squeeze() dropping B=1
    torch.testing.assert_close(single, batch[:1], rtol=1e-5, atol=1e-6)  # eval output of a sample ignores the others


@pytest.mark.parametrize("kind, name, params, coords", MODELS)
def test_graph_constants_are_buffers_outside_the_state_dict(kind, name, params, coords):
    model = build_model(kind, name)
    assert not any(
        k.endswith((".adj", "self_mask", "neighbour_mask", "source", "limb_joints")) for k in model.state_dict()
    )
    double = model.to(torch.float64).eval()  # buffers follow dtype/device changes
    with torch.no_grad():
        assert double(torch.randn(2, 17, 2, dtype=torch.float64)).dtype == torch.float64


def test_training_mode_runs_backward():
    model = build_model("lifter", "htnet").train()
    model(torch.randn(4, 17, 2)).square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_unknown_model_and_parameter():
    with pytest.raises(CheckpointError, match="unknown lifter model 'resnet'"):
        build_model("lifter", "resnet")
    with pytest.raises(CheckpointError, match="no parameter"):
        build_model("lifter", "mgcn_lw", {"depth": 3})
