"""The modulated-GCN Adaptive Variance Generation model paired with HTNet (1,099,100 parameters).

Modulated graph convolutions with separate self / neighbour weights, 256 hidden channels, 4
residual blocks. (N, 17, 2) normalised 2D -> (N, 17) relative error of the lifter at each joint.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from posedeploy.training.models.graph_conv import ModulatedGCN


@dataclass
class GCNAVGConfig:
    hidden: int = 256
    num_layers: int = 4


class GCNAVG(nn.Module):
    def __init__(self, adj: torch.Tensor, config: GCNAVGConfig | None = None):
        super().__init__()
        self.config = config or GCNAVGConfig()
        c = self.config
        self.gcn = ModulatedGCN(adj, 2, c.hidden, 1, c.num_layers, weights=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, J, 1) -> (N, J): an index, not squeeze(), exports without a branch
        depth: torch.Tensor = self.gcn(x)[..., 0]
        return depth
