"""Inference form of the MGCN-lw lifter: the same function, arranged for fast deployment.

Trained form, per graph convolution block, activations (N, J, C):
    relu(BN(sym(A + dA) @ (M * (X W)) + b))                    several full passes per block
Inference form, activations joint-major (J, N, C):
    relu(A' @ bmm(X, W_j) + b')                                one batched GEMM, one GEMM, add, relu
where W_j = W diag(M_j * s) folds the joint modulation M and the BatchNorm scale s into one weight
matrix per joint, b' = b * s + t folds the BatchNorm shift, and A' = sym(A + dA) is a constant.
The adjacency product becomes a single (J x J) @ (J x N*C) GEMM instead of N tiny ones. On a
2-core CPU this took the MGCN-lw pipeline from 34 to 29 ms per frame (B=1, S=200) and from 607
to 398 ms at B=16 (docs/PERFORMANCE.md). The per-joint weights make the graph 17x larger
(9 MB); the GCN AVG model, with twice the weights and only 2B poses per call, is left as trained.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from posedeploy.training.models.graph_conv import GraphConvBlock, ModulatedGCN, ModulatedGraphConv, ResGraphConvBlock
from posedeploy.training.models.mgcn_lw import MGCNLite


def _bn_affine(bn: nn.BatchNorm1d | None, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    if bn is None:
        return torch.ones(channels), torch.zeros(channels)
    assert bn.running_mean is not None and bn.running_var is not None  # tracked: the models' BatchNorm1d default
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


class FusedGraphConv(nn.Module):
    """One modulated graph convolution (+ folded BatchNorm, + ReLU) on (J, N, C) activations."""

    weight: torch.Tensor  # buffers (registered in __init__)
    mix: torch.Tensor
    bias: torch.Tensor

    def __init__(self, conv: ModulatedGraphConv, bn: nn.BatchNorm1d | None, relu: bool):
        super().__init__()
        if conv.W.shape[0] != 1:
            raise ValueError("the inference form covers the shared-weight convolution of MGCN-lw")
        with torch.no_grad():
            adj = conv.adj + conv.adj2
            scale, shift = _bn_affine(bn, conv.out_features)
            # W (1, C_in, C_out) -> one matrix per joint (J, C_in, C_out)
            self.register_buffer("weight", conv.W[0][None] * (conv.M * scale)[:, None, :])
            self.register_buffer("mix", (adj.T + adj) / 2)
            self.register_buffer("bias", conv.bias * scale + shift)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        j, n, _ = x.shape  # (J, N, C_in)
        out = (self.mix @ torch.matmul(x, self.weight).reshape(j, -1)).reshape(j, n, -1) + self.bias
        return torch.relu(out) if self.relu else out


class FusedResBlock(nn.Module):
    def __init__(self, block: ResGraphConvBlock):
        super().__init__()
        self.conv1 = FusedGraphConv(block.gconv1.gconv, block.gconv1.bn, relu=True)
        self.conv2 = FusedGraphConv(block.gconv2.gconv, block.gconv2.bn, relu=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.conv2(self.conv1(x))
        return out


class FusedModulatedGCN(nn.Module):
    """(N, J, C_in) -> (N, J, C_out), computed joint-major inside."""

    def __init__(self, gcn: ModulatedGCN):
        super().__init__()
        first = cast(GraphConvBlock, gcn.gconv_input[0])
        self.input = FusedGraphConv(first.gconv, first.bn, relu=True)
        self.blocks = nn.Sequential(*[FusedResBlock(cast(ResGraphConvBlock, b)) for b in gcn.gconv_layers])
        self.output = FusedGraphConv(gcn.gconv_output, None, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(0, 1)  # (N, J, C) -> (J, N, C)
        out: torch.Tensor = self.output(self.blocks(self.input(x))).transpose(0, 1)
        return out


class FusedMGCNLite(nn.Module):
    def __init__(self, model: MGCNLite):
        super().__init__()
        self.gcn = FusedModulatedGCN(model.gcn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pose: torch.Tensor = self.gcn(x)
        return pose


def for_inference(model: nn.Module) -> nn.Module:
    """The inference form of a model in eval mode, where one exists; the model itself otherwise."""
    if isinstance(model, MGCNLite):
        return FusedMGCNLite(model).eval()
    return model
