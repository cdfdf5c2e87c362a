"""Modulated graph convolution (Zou & Tang, ICCV 2021), the building block of MGCN-lw, of the GCN
AVG model and of HTNet's local joint branch.

    A'  = sym(A + dA)                       learnable adjacency correction dA, kept symmetric
    out = diag(A') * (M * X W0) + offdiag(A') @ (M * X W1) + b

W0 transforms a joint's own feature and W1 its neighbours' (``weights=2``); with ``weights=1``
one matrix serves both (the MGCN-lw variant). M modulates each joint's output channels.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ModulatedGraphConv(nn.Module):
    adj: torch.Tensor  # buffers (registered in __init__)
    self_mask: torch.Tensor
    neighbour_mask: torch.Tensor

    def __init__(self, in_features: int, out_features: int, adj: torch.Tensor, weights: int = 2):
        super().__init__()
        if weights not in (1, 2):
            raise ValueError(f"weights must be 1 or 2, got {weights}")
        joints = adj.shape[0]
        self.in_features, self.out_features = in_features, out_features
        self.W = nn.Parameter(torch.empty(weights, in_features, out_features))
        self.M = nn.Parameter(torch.empty(joints, out_features))
        self.adj2 = nn.Parameter(torch.full((joints, joints), 1e-6))
        self.bias = nn.Parameter(torch.empty(out_features))
        nn.init.xavier_uniform_(self.W, gain=1.414)
        nn.init.xavier_uniform_(self.M, gain=1.414)
        bound = 1.0 / math.sqrt(out_features)
        nn.init.uniform_(self.bias, -bound, bound)
        # Buffers, not parameters: they follow .to(device) and export as constants, and stay out
        # of the state dict so that official checkpoints load unchanged.
        eye = torch.eye(joints)
        self.register_buffer("adj", adj.detach().clone().float(), persistent=False)
        self.register_buffer("self_mask", eye, persistent=False)
        self.register_buffer("neighbour_mask", 1 - eye, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, J, in) -> (N, J, out)
        adj = self.adj + self.adj2
        adj = (adj.T + adj) / 2
        n = x.shape[0]
        h_self = self.M * torch.matmul(x, self.W[0])
        # baddbmm: the bias is added inside the batched product instead of in another full pass.
        if self.W.shape[0] == 1:
            return torch.baddbmm(self.bias, adj.expand(n, -1, -1), h_self)
        h_neigh = self.M * torch.matmul(x, self.W[1])
        # diag(A') (M*XW0): a per-joint scale, exactly what (A' * I) @ (M*XW0) computes.
        self_weight = (adj * self.self_mask).sum(dim=1, keepdim=True)
        neighbours = (adj * self.neighbour_mask).expand(n, -1, -1)
        return self_weight * h_self + torch.baddbmm(self.bias, neighbours, h_neigh)

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, weights={self.W.shape[0]}"


class GraphConvBlock(nn.Module):
    """Modulated graph convolution -> BatchNorm over channels -> ReLU (-> dropout while training,
    when ``dropout`` > 0; see ``set_dropout``)."""

    def __init__(self, adj: torch.Tensor, in_features: int, out_features: int, weights: int = 2):
        super().__init__()
        self.gconv = ModulatedGraphConv(in_features, out_features, adj, weights)
        self.bn = nn.BatchNorm1d(out_features)
        self.relu = nn.ReLU()
        # A plain attribute, not a module or a parameter: it is a training choice, so checkpoints
        # and exported graphs are the same with or without it.
        self.dropout = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.gconv(x)  # (N, J, C)
        n, j, c = x.shape
        # BatchNorm over (N*J, C) has the statistics of BatchNorm1d over (N, C, J) without the
        # two transposed copies (half the time of this block on a CPU).
        x = self.relu(self.bn(x.reshape(n * j, c)).reshape(n, j, c))
        if self.training and self.dropout > 0:
            # The same as nn.functional.dropout, a third faster on a CPU: uniform draws are cheaper
            # than its Bernoulli draws.
            x = x * ((torch.rand(x.shape, device=x.device) >= self.dropout) * (1 / (1 - self.dropout)))
        return x


def set_dropout(model: nn.Module, p: float) -> int:
    """Drop each hidden feature of every graph convolution block of ``model`` with probability
    ``p`` while training (Semantic/Modulated GCN's ``p_dropout``); returns how many blocks it set."""
    if not 0 <= p < 1:
        raise ValueError(f"dropout must be in [0, 1), got {p}")
    blocks = [m for m in model.modules() if isinstance(m, GraphConvBlock)]
    for block in blocks:
        block.dropout = p
    return len(blocks)


class ResGraphConvBlock(nn.Module):
    """Two graph convolution blocks with a residual connection."""

    def __init__(self, adj: torch.Tensor, features: int, weights: int = 2):
        super().__init__()
        self.gconv1 = GraphConvBlock(adj, features, features, weights)
        self.gconv2 = GraphConvBlock(adj, features, features, weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.gconv2(self.gconv1(x))
        return out


class ModulatedGCN(nn.Module):
    """Input block, ``num_layers`` residual blocks, output graph convolution: (N, J, in) -> (N, J, out)."""

    def __init__(
        self, adj: torch.Tensor, in_features: int, hidden: int, out_features: int, num_layers: int, weights: int
    ):
        super().__init__()
        self.gconv_input = nn.Sequential(GraphConvBlock(adj, in_features, hidden, weights))
        self.gconv_layers = nn.Sequential(*[ResGraphConvBlock(adj, hidden, weights) for _ in range(num_layers)])
        self.gconv_output = ModulatedGraphConv(hidden, out_features, adj, weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.gconv_output(self.gconv_layers(self.gconv_input(x)))
        return out
