"""Analytic FLOP counts of dense and Top-k MLP blocks (multiply-adds count as 2 FLOPs)."""

from __future__ import annotations

from dataclasses import dataclass

from tfkit.backend import keras

__all__ = ["MlpFlops", "mlp_flops", "model_mlp_flops"]


@dataclass(frozen=True)
class MlpFlops:
    """FLOPs of one MLP `V·act(Kᵀx)` over `tokens` tokens.

    Attributes:
        first: the `Kᵀx` matmul (always dense: which units win is known only after it).
        second: the `V·h` matmul: dense, or over the `k` active rows of V only.
        total: first + second (biases and the activation are ignored: O(d_ff) per token).
    """

    first: int
    second: int

    @property
    def total(self) -> int:
        return self.first + self.second


def mlp_flops(tokens: int, hidden_dim: int, intermediate_dim: int,
              top_k: int | None = None) -> MlpFlops:
    """FLOPs of one MLP, dense (`top_k=None`) or with the second matmul over k active rows.

    Example:
        >>> dense = mlp_flops(65, 128, 512)
        >>> sparse = mlp_flops(65, 128, 512, top_k=32)
        >>> round(dense.total / sparse.total, 2)
        1.88
    """
    active = intermediate_dim if top_k is None else min(int(top_k), intermediate_dim)
    return MlpFlops(first=2 * tokens * hidden_dim * intermediate_dim,
                    second=2 * tokens * active * hidden_dim)


def model_mlp_flops(model: keras.Model, tokens: int, top_k: int | None = None
                    ) -> dict[str, MlpFlops]:
    """`mlp_flops` for every FeedForward of `model` (`top_k` defaults to each layer's own)."""
    from tfkit.sparsity.measure import feed_forward_layers

    out = {}
    for name, ff in feed_forward_layers(model):
        hidden = int(ff.output_dense.kernel.shape[-1])
        out[name] = mlp_flops(tokens, hidden, ff.intermediate_dim,
                              ff.top_k if top_k is None else top_k)
    return out
