"""Graph convolution layers (`GraphConv`, `ChebGraphConv`) and deep stacks of them (`DeepGCNBlock`,
`GCNStack`). They take the graph operator in `forward(x, operator)`: see `helpers.graph`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from helpers.checks import check_choice, check_int, check_number
from helpers.graph.operators import _check_operator, propagate

#: The skip connections of `DeepGCNBlock` and `GCNStack`.
BLOCKS = ("res+", "res", "dense", "plain")


# --- layers --------------------------------------------------------------------------------------
class GraphConv(nn.Module):
    """First-order graph convolution (Kipf and Welling's GCN rule): H' = Â H W + b.

    forward(x, operator): x (..., N, in_channels) with 0 to 2 leading axes, e.g. (batch, time,
    nodes, channels); operator Â (N, N), dense or sparse, usually `normalized_adjacency(adj)`.
    Returns (..., N, out_channels). Parameters: `weight` (in_channels, out_channels), `bias`
    (out_channels,). The activation is not part of the layer.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.weight = nn.Parameter(torch.empty(in_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform weight and zero bias, as PyTorch Geometric's GCNConv."""
        nn.init.xavier_uniform_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, operator: Tensor) -> Tensor:
        _check_operator(operator, x, self.in_channels)
        # Multiply by W first when it shrinks the channels: the graph product moves fewer numbers.
        if self.out_channels <= self.in_channels:
            out = propagate(operator, x @ self.weight)
        else:
            out = propagate(operator, x) @ self.weight
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, bias={self.bias is not None}"


class ChebGraphConv(nn.Module):
    """Chebyshev graph convolution of order K (Defferrard et al.): H' = sum_k T_k(L~) H W_k + b.

    forward(x, operator): x (..., N, in_channels) with 0 to 2 leading axes, e.g. (batch, time,
    nodes, channels); operator L~ (N, N), dense or sparse, usually `scaled_laplacian(adj)`.
    Returns (..., N, out_channels). The terms Z_k = T_k(L~) H come from the recursion Z_0 = H,
    Z_1 = L~ H, Z_k = 2 L~ Z_{k-1} - Z_{k-2}, so only products with L~ are needed (K - 1 of them),
    never T_k itself. When out_channels < in_channels the weights come first, as GCN computes
    Â (H W): Y_k = H W_k, then sum_k T_k(L~) Y_k by Clenshaw's recurrence b_k = Y_k + 2 L~ b_{k+1}
    - b_{k+2}, result Y_0 + L~ b_1 - b_2; the same K - 1 products with L~, on narrower features (4x
    fewer in the STGCN's 64 -> 16 layers). Both orders give the same result up to rounding (tested).
    K = 1 ignores the graph; K = 2 mixes 1-hop neighbours; order K reaches K - 1 hops.
    Parameters: `weight` (K, in_channels, out_channels), `bias` (out_channels,).
    """

    def __init__(self, in_channels: int, out_channels: int, K: int, bias: bool = True):
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.K = check_int("K", K)
        self.weight = nn.Parameter(torch.empty(K, in_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform W_k for each k and zero bias, as PyTorch Geometric's ChebConv."""
        for w in self.weight:
            nn.init.xavier_uniform_(w)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, operator: Tensor) -> Tensor:
        _check_operator(operator, x, self.in_channels)
        if self.out_channels < self.in_channels:
            out = self._weights_first(x, operator)
        else:
            z_prev, z = x, x
            out = x @ self.weight[0]
            for k in range(1, self.K):
                z_next = propagate(operator, z) if k == 1 else 2 * propagate(operator, z) - z_prev
                z_prev, z = z, z_next
                out = out + z @ self.weight[k]
        return out if self.bias is None else out + self.bias

    def _weights_first(self, x: Tensor, operator: Tensor) -> Tensor:
        """sum_k T_k(L~) (H W_k) by Clenshaw's recurrence: (..., N, C_in) -> (..., N, C_out)."""
        all_weights = self.weight.transpose(0, 1).reshape(self.in_channels, -1)  # (C_in, K C_out)
        y = (x @ all_weights).unflatten(-1, (self.K, self.out_channels)).unbind(-2)  # K x (..., N, C_out)
        b, b_after = y[-1], None  # b_k and b_{k+1}, from k = K - 1 down
        for k in range(self.K - 2, 0, -1):
            b_next = y[k] + 2 * propagate(operator, b)
            b, b_after = (b_next if b_after is None else b_next - b_after), b
        if self.K == 1:
            return b
        out = y[0] + propagate(operator, b)
        return out if b_after is None else out - b_after

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, K={self.K}, bias={self.bias is not None}"


class DeepGCNBlock(nn.Module):
    """One deep-GCN layer: a graph convolution with normalisation, activation, dropout and a skip.

    In the spirit of PyTorch Geometric's `DeepGCNLayer` (Li et al., DeepGCNs and DeeperGCN), with
    the same orders:
      - "res+":  x + conv(dropout(act(norm(x))))            (pre-activation residual)
      - "res":   dropout(x + act(norm(conv(x))))
      - "dense": dropout(cat([x, act(norm(conv(x)))], -1))  (channels grow by conv.out_channels)
      - "plain": dropout(act(norm(conv(x))))                 (no skip: an ordinary deep stack)
    `conv` is any module called as `conv(x, *args)`, e.g. `GraphConv` with `args = (operator,)`;
    `norm` and `act` act on the last (channel) axis (`nn.LayerNorm`, `nn.ReLU`), or are None.
    forward(x, *args): x (..., N, C) -> (..., N, C') with C' = C except for "dense".

    ckpt_grad=True checkpoints the branch (everything but the skip) with `torch.utils.checkpoint`
    (use_reentrant=False): its activations are recomputed during backward instead of being stored,
    trading compute for memory. It is refused with a norm that tracks running statistics
    (BatchNorm), which the recomputation would update twice.
    """

    def __init__(self, conv: nn.Module, norm: nn.Module | None = None, act: nn.Module | None = None,
                 block: str = "res+", dropout: float = 0.0, ckpt_grad: bool = False):
        super().__init__()
        _check_block_parts(conv, norm, ckpt_grad)
        self.conv, self.norm, self.act = conv, norm, act
        block = block.lower() if isinstance(block, str) else block
        self.block = check_choice("block", block, BLOCKS)
        self.dropout = float(check_number("dropout", dropout, 0, 1, high_open=True))
        self.ckpt_grad = bool(ckpt_grad)

    def reset_parameters(self) -> None:
        for module in (self.conv, self.norm):
            if module is not None and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def _norm_act(self, h: Tensor) -> Tensor:
        if self.norm is not None:
            h = self.norm(h)
        return h if self.act is None else self.act(h)

    def _branch(self, x: Tensor, *args) -> Tensor:
        if self.block == "res+":
            h = F.dropout(self._norm_act(x), p=self.dropout, training=self.training)
            return self.conv(h, *args)
        return self._norm_act(self.conv(x, *args))

    def forward(self, x: Tensor, *args) -> Tensor:
        if self.ckpt_grad and torch.is_grad_enabled():
            h = checkpoint(self._branch, x, *args, use_reentrant=False)
        else:
            h = self._branch(x, *args)
        if self.block == "res+":
            return x + h
        if self.block == "res":
            h = x + h
        elif self.block == "dense":
            h = torch.cat([x, h], dim=-1)
        return F.dropout(h, p=self.dropout, training=self.training)

    def extra_repr(self) -> str:
        return f"block={self.block!r}, dropout={self.dropout}, ckpt_grad={self.ckpt_grad}"


def _check_block_parts(conv: nn.Module, norm: nn.Module | None, ckpt_grad: bool) -> None:
    if not isinstance(conv, nn.Module):
        raise TypeError(f"conv must be an nn.Module, got {type(conv).__name__}")
    if ckpt_grad and getattr(norm, "track_running_stats", False):
        raise ValueError(f"ckpt_grad=True would update the running statistics of "
                         f"{type(norm).__name__} twice (forward and recomputation); expected a "
                         "norm without running statistics (e.g. nn.LayerNorm, or BatchNorm with "
                         "track_running_stats=False)")


class GCNStack(nn.Module):
    """A deep GCN for node-level tasks: Linear encoder -> `num_layers` DeepGCNBlocks -> Linear head.

    Each block wraps `GraphConv(hidden, hidden)` (or its dense-growth equivalent) with LayerNorm
    (when `norm=True`), ReLU and the skip `block` ("plain", "res", "res+", "dense"). A "res+" stack
    ends with norm and ReLU before the head, as in DeeperGCN.
    forward(x, operator): x (..., N, in_channels), operator (N, N) -> (..., N, out_channels).
    embed(x, operator) returns the node embeddings the head sees, (..., N, hidden) (wider for
    "dense"): the thing to measure over-smoothing on; layer_outputs(x, operator) the features after
    every layer.
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int,
                 block: str = "plain", norm: bool = True, dropout: float = 0.0,
                 ckpt_grad: bool = False):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("hidden_channels", hidden_channels),
                            ("out_channels", out_channels)):
            check_int(name, value)
        self.num_layers = check_int("num_layers", num_layers, minimum=0)
        self.block = check_choice("block", block, BLOCKS)
        self.encoder = nn.Linear(in_channels, hidden_channels)
        self.blocks = nn.ModuleList()
        width = hidden_channels
        for _ in range(num_layers):
            conv = GraphConv(width, hidden_channels)
            norm_width = width if block == "res+" else hidden_channels
            layer_norm = nn.LayerNorm(norm_width) if norm else None
            self.blocks.append(DeepGCNBlock(conv, layer_norm, nn.ReLU(), block=block,
                                            dropout=dropout, ckpt_grad=ckpt_grad))
            width = width + hidden_channels if block == "dense" else hidden_channels
        self.final_norm = nn.LayerNorm(width) if (norm and block == "res+") else None
        self.head = nn.Linear(width, out_channels)

    def reset_parameters(self) -> None:
        for module in (self.encoder, self.head, self.final_norm, *self.blocks):
            if module is not None:
                module.reset_parameters()

    def layer_outputs(self, x: Tensor, operator: Tensor) -> list[Tensor]:
        """The node features after the encoder and after each block: num_layers + 1 tensors
        (..., N, width)."""
        outputs = [self.encoder(x)]
        for block in self.blocks:
            outputs.append(block(outputs[-1], operator))
        return outputs

    def embed(self, x: Tensor, operator: Tensor) -> Tensor:
        h = self.layer_outputs(x, operator)[-1]
        if self.block == "res+":  # the last block ends with a conv: normalise, activate its output
            h = torch.relu(self.final_norm(h) if self.final_norm is not None else h)
        return h

    def forward(self, x: Tensor, operator: Tensor) -> Tensor:
        return self.head(self.embed(x, operator))

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}, block={self.block!r}"
