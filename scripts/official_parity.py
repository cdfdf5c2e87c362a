"""Record the outputs of the official PRPose model definitions on fixed weights and inputs.

    PYTHONPATH=/path/with/einops+scipy python scripts/official_parity.py --prpose PATH/TO/PRPose

PATH/TO/PRPose is a checkout of github.com/xzhouzeng/PRPose (not part of this project). The
script instantiates its four models, fills them with the deterministic weights of
tests/official_weights.py, runs them in eval mode on a fixed input and writes names, shapes,
input and outputs to tests/fixtures/official_outputs.npz. tests/test_official_import.py then
imports the same weights through posedeploy and requires the same outputs.

timm is only used by the official code for DropPath (identity in eval mode) and two constants;
a minimal stand-in module is registered instead of installing timm (which would pull torchvision).
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from official_weights import random_official_state  # noqa: E402

SEEDS = {"htnet": 11, "mgcn_lw": 12, "avg_gcn": 13, "avg_mlp": 14}


def _stand_in_timm() -> None:
    class DropPath(nn.Module):  # only evaluated in eval mode here, where it is the identity
        def __init__(self, p: float = 0.0):
            super().__init__()

        def forward(self, x):
            return x

    timm = types.ModuleType("timm")
    data = types.ModuleType("timm.data")
    data.IMAGENET_DEFAULT_MEAN, data.IMAGENET_DEFAULT_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    models = types.ModuleType("timm.models")
    layers = types.ModuleType("timm.models.layers")
    layers.DropPath = DropPath
    sys.modules.update({"timm": timm, "timm.data": data, "timm.models": models, "timm.models.layers": layers})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prpose", required=True, type=Path, help="checkout of xzhouzeng/PRPose")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "official_outputs.npz")
    args = parser.parse_args()
    _stand_in_timm()
    sys.path.insert(0, str(args.prpose))
    from models.avg_model.mlp import LinearModel
    from models.avg_model.modulated_gcn import ModulatedGCN
    from models.htnet.GCN_conv import adj_mx_from_skeleton
    from models.htnet.trans import HTNet
    from models.mgcn_lw.modulated_gcn import MGCN_lw

    class Skeleton:  # the two methods adj_mx_from_skeleton reads
        def num_joints(self):
            return 17

        def parents(self):
            return [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15]

    adj = adj_mx_from_skeleton(Skeleton())
    models = {
        "htnet": HTNet(adj),
        "mgcn_lw": MGCN_lw(adj, hid_dim=128, num_layers=4, nodes_group=None),
        "avg_gcn": ModulatedGCN(adj, hid_dim=256),
        "avg_mlp": LinearModel(num_stage=1),
    }
    x = torch.randn(8, 1, 17, 2, generator=torch.Generator().manual_seed(0)) * 0.3
    record = {"input": x[:, 0].numpy(), "adjacency": adj.numpy()}
    for name, model in models.items():
        keys = list(model.state_dict())
        shapes = [list(t.shape) for t in model.state_dict().values()]
        model.load_state_dict(random_official_state(keys, shapes, SEEDS[name]))
        model.eval()
        with torch.no_grad():
            out = model(x)
        record[f"{name}/keys"] = np.array(keys)
        record[f"{name}/shapes"] = np.array([",".join(map(str, s)) for s in shapes])
        record[f"{name}/output"] = out.reshape(8, 17, -1).squeeze(-1).numpy()
        print(f"{name}: {sum(p.numel() for p in model.parameters()):,} parameters, output {tuple(out.shape)}")
    np.savez(args.out, **record)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
