"""HTNet: Human Topology aware Network (Cai et al., ICASSP 2023), the PRPose HTNet lifter
(3 layers, 240 channels, MLP 1024; 3,048,489 parameters).

Each layer splits the 240 channels of every joint token into three 80-channel branches:
- LJC, local joint-level connection: two modulated graph convolutions over the bone graph;
- IPC, inter-part constraint: limbs pooled by strided convolutions over 3 and 2 joints, the
  pooled limb features written back onto the distal joints of each limb;
- GBI, global body-level interaction: multi-head self-attention over all joints;
then a shared MLP over the concatenation. (N, 17, 2) -> (N, 17, 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from posedeploy.training.models.graph_conv import ModulatedGraphConv

# The four limbs in the order the IPC convolutions pool them: right leg, left leg, left arm, right arm.
LIMBS_3: tuple[tuple[int, ...], ...] = ((1, 2, 3), (4, 5, 6), (11, 12, 13), (14, 15, 16))
LIMBS_2: tuple[tuple[int, ...], ...] = tuple(limb[1:] for limb in LIMBS_3)


@dataclass
class HTNetConfig:
    layers: int = 3
    channels: int = 240  # split in three branches: must be divisible by 3 * heads
    mlp_hidden: int = 1024
    gcn_hidden: int = 384
    heads: int = 8
    dropout: float = 0.1
    drop_path: float = 0.3  # stochastic depth rises linearly from 0.1 to this over the layers
    joints: int = 17


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch for whole samples during training."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class Mlp(nn.Module):
    def __init__(self, features: int, hidden: int, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(features, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, features)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
        return out


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.scale = (dim / heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, j, c = x.shape
        q, k, v = self.qkv(x).reshape(n, j, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)  # (N, heads, J, J)
        out = (attn @ v).transpose(1, 2).reshape(n, j, c)
        projected: torch.Tensor = self.proj_drop(self.proj(out))
        return projected


class LJC(nn.Module):
    def __init__(self, adj: torch.Tensor, dim: int, hidden: int, drop_path: float):
        super().__init__()
        self.norm_gcn1 = nn.LayerNorm(dim)
        self.gcn1 = ModulatedGraphConv(dim, hidden, adj)
        self.gelu = nn.GELU()
        self.gcn2 = ModulatedGraphConv(hidden, dim, adj)
        self.norm_gcn2 = nn.LayerNorm(dim)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.drop_path(self.norm_gcn2(self.gcn2(self.gelu(self.gcn1(self.norm_gcn1(x))))))
        return out


class _LimbPooling(nn.Module):
    """Pool each limb with a strided convolution, refine with an MLP, and write the limb feature
    onto the limb's joints after the first; the other joints keep their (normalised) features."""

    limb_joints: torch.Tensor  # buffers (registered in __init__)
    source: torch.Tensor

    def __init__(
        self,
        dim: int,
        mlp_hidden: int,
        dropout: float,
        drop_path: float,
        limbs: tuple[tuple[int, ...], ...],
        joints: int,
    ):
        super().__init__()
        size = len(limbs[0])
        self.norm = nn.LayerNorm(dim)
        self.conv = nn.Conv1d(dim, dim, kernel_size=size, stride=size)
        self.gelu = nn.GELU()
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_hidden, dropout)
        self.drop_path = DropPath(drop_path)
        self.register_buffer("limb_joints", torch.tensor([j for limb in limbs for j in limb]), persistent=False)
        # Token k of [joints..., limbs...] that lands on each joint: a gather instead of an in-place
        # scatter, so the graph exports and runs the same everywhere.
        source = list(range(joints))
        for i, limb in enumerate(limbs):
            for j in limb[1:]:
                source[j] = joints + i
        self.register_buffer("source", torch.tensor(source), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)  # (N, J, C)
        limbs = x.index_select(1, self.limb_joints).transpose(1, 2)  # (N, C, joints in limbs)
        pooled = self.drop_path(self.gelu(self.conv(limbs))).transpose(1, 2)  # (N, limbs, C)
        pooled = pooled + self.drop_path(self.mlp(self.norm_mlp(pooled)))
        return torch.cat([x, pooled], dim=1).index_select(1, self.source)


class IPC(nn.Module):
    def __init__(self, dim: int, mlp_hidden: int, dropout: float, drop_path: float, joints: int):
        super().__init__()
        self.pool3 = _LimbPooling(dim, mlp_hidden, dropout, drop_path, LIMBS_3, joints)
        self.pool2 = _LimbPooling(dim, mlp_hidden, dropout, drop_path, LIMBS_2, joints)

    def forward(self, x_ljc: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        x = x + x_ljc
        out: torch.Tensor = self.pool3(x) + self.pool2(x) + x
        return out


class GBI(nn.Module):
    def __init__(self, dim: int, heads: int, drop_path: float):
        super().__init__()
        self.norm_attn = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout=0.1)
        self.drop_path = DropPath(drop_path)

    def forward(self, x_ipc: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        x = x + x_ipc
        out: torch.Tensor = x + self.drop_path(self.attn(self.norm_attn(x)))
        return out


class Block(nn.Module):
    def __init__(self, adj: torch.Tensor, c: HTNetConfig, drop_path: float):
        super().__init__()
        dim = c.channels // 3
        self.ljc = LJC(adj, dim, c.gcn_hidden, drop_path)
        self.ipc = IPC(dim, c.mlp_hidden, c.dropout, drop_path, c.joints)
        self.gbi = GBI(dim, c.heads, drop_path)
        self.norm_mlp = nn.LayerNorm(c.channels, eps=1e-6)
        self.mlp = Mlp(c.channels, c.mlp_hidden, c.dropout)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_ljc, x_ipc, x_gbi = x.chunk(3, dim=-1)
        x_ljc = self.ljc(x_ljc)
        x_ipc = self.ipc(x_ljc, x_ipc)
        x_gbi = self.gbi(x_ipc, x_gbi)
        x = torch.cat([x_ljc, x_ipc, x_gbi], dim=-1)
        out: torch.Tensor = x + self.drop_path(self.mlp(self.norm_mlp(x)))
        return out


class HTNet(nn.Module):
    def __init__(self, adj: torch.Tensor, config: HTNetConfig | None = None):
        super().__init__()
        self.config = c = config or HTNetConfig()
        if c.channels % 3 or (c.channels // 3) % c.heads:
            raise ValueError(f"channels ({c.channels}) must split into 3 branches divisible by {c.heads} heads")
        self.patch_embed = nn.Linear(2, c.channels)
        self.pos_embed = nn.Parameter(torch.zeros(1, c.joints, c.channels))
        rates = torch.linspace(0.1, c.drop_path, c.layers).tolist()
        self.blocks = nn.ModuleList([Block(adj, c, rate) for rate in rates])
        self.norm = nn.LayerNorm(c.channels, eps=1e-6)
        self.fcn = nn.Linear(c.channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x) + self.pos_embed  # (N, J, C)
        for block in self.blocks:
            x = block(x)
        pose: torch.Tensor = self.fcn(self.norm(x))
        return pose
