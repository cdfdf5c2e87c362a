"""The MLP Adaptive Variance Generation model paired with MGCN-lw (12,049 parameters).

A Martinez-style residual MLP over the flattened 2D pose: 34 -> 64, one residual stage of two
64-wide layers (BatchNorm, ReLU, dropout 0.5), 64 -> 17. (N, 17, 2) -> (N, 17).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class MLPAVGConfig:
    hidden: int = 64
    num_stages: int = 1
    dropout: float = 0.5
    joints: int = 17


class _ResidualStage(nn.Module):
    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.w1 = nn.Linear(width, width)
        self.batch_norm1 = nn.BatchNorm1d(width)
        self.w2 = nn.Linear(width, width)
        self.batch_norm2 = nn.BatchNorm1d(width)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.dropout(self.relu(self.batch_norm1(self.w1(x))))
        y = self.dropout(self.relu(self.batch_norm2(self.w2(y))))
        return x + y


class MLPAVG(nn.Module):
    def __init__(self, adj: torch.Tensor | None = None, config: MLPAVGConfig | None = None):
        super().__init__()  # adj is accepted for a uniform constructor; the MLP ignores the graph
        self.config = config or MLPAVGConfig()
        c = self.config
        self.w1 = nn.Linear(c.joints * 2, c.hidden)
        self.batch_norm1 = nn.BatchNorm1d(c.hidden)
        self.linear_stages = nn.ModuleList([_ResidualStage(c.hidden, c.dropout) for _ in range(c.num_stages)])
        self.w2 = nn.Linear(c.hidden, c.joints)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.flatten(1)  # (N, J, 2) -> (N, 2J)
        y = self.dropout(self.relu(self.batch_norm1(self.w1(y))))
        for stage in self.linear_stages:
            y = stage(y)
        out: torch.Tensor = self.w2(y)
        return out
