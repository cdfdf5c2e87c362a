"""MGCN-lw: the lightweight modulated GCN lifter of PRPose (157,696 parameters).

Modulated graph convolutions with one weight matrix shared by a joint and its neighbours, 128
hidden channels, 4 residual blocks. (N, 17, 2) normalised 2D -> (N, 17, 3) root-relative metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from posedeploy.training.models.graph_conv import ModulatedGCN


@dataclass
class MGCNLiteConfig:
    hidden: int = 128
    num_layers: int = 4


class MGCNLite(nn.Module):
    def __init__(self, adj: torch.Tensor, config: MGCNLiteConfig | None = None):
        super().__init__()
        self.config = config or MGCNLiteConfig()
        c = self.config
        self.gcn = ModulatedGCN(adj, 2, c.hidden, 3, c.num_layers, weights=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pose: torch.Tensor = self.gcn(x)
        return pose
