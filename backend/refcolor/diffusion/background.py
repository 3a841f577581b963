"""Background tokens: the recovery transformer and the mask-threshold embedding (paper Sec. 3.3).

The background token set is the reference with its foreground whited out, encoded
like the reference and passed through a small transformer whose learned queries
cross-attend to those tokens, so the whited-out area is "recovered" from what
surrounds it. An embedding of the mask threshold is added to the token sets, as
the official model does (``thresh_embedder`` + ``ClusterTransformer`` in
``refnet/modules/{embedder,proj}.py``); submodule names follow those keys
(``threshold_embedder.embed_layer.*``, ``transformer.embedding``,
``transformer.layers.<i>.<0: norm1, 1: norm2, 2: attention, 3: MLP>``).
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class ThresholdEmbedder(nn.Module):
    """A scalar threshold -> (N, 1, out_dim): sinusoidal features (cos first), then Linear-SiLU-Linear.

    The last linear is zero-initialised, so a fresh embedder adds nothing.
    """

    def __init__(self, sinusoidal_dim: int, out_dim: int) -> None:
        super().__init__()
        self.sinusoidal_dim = sinusoidal_dim
        self.embed_layer = nn.Sequential(
            nn.Linear(sinusoidal_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim)
        )
        last = self.embed_layer[2]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, thresholds: torch.Tensor) -> torch.Tensor:
        """(N,) raw float thresholds -> (N, 1, out_dim)."""
        features = get_timestep_embedding(
            thresholds.float(), self.sinusoidal_dim, flip_sin_to_cos=True, downscale_freq_shift=0
        )  # (N, sinusoidal_dim)
        weight = self.embed_layer[0].weight
        return self.embed_layer(features.to(weight.dtype)).unsqueeze(1)


class RecoveryTransformer(nn.Module):
    """Learned queries cross-attending to tokens: (B, T, dim) -> (B, learned_queries, dim)."""

    def __init__(self, dim: int, layers: int, learned_queries: int, head_dim: int, mlp_ratio: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    nn.LayerNorm(dim),
                    nn.LayerNorm(dim),
                    Attention(
                        query_dim=dim, heads=dim // head_dim, dim_head=head_dim, bias=False, out_bias=True
                    ),
                    nn.Sequential(
                        nn.Linear(dim, dim * mlp_ratio), nn.SiLU(), nn.Linear(dim * mlp_ratio, dim)
                    ),
                ]
            )
            for _ in range(layers)
        )
        self.embedding = nn.Parameter(torch.randn(learned_queries, dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embedding.unsqueeze(0).expand(tokens.shape[0], -1, -1)  # (B, Q, dim)
        for layer in self.layers:
            norm1, norm2, attention, mlp = list(layer.children())
            # As the official ClusterTransformer: the queries are normalised, the tokens are not.
            x = attention(norm1(x), encoder_hidden_states=tokens) + x
            x = mlp(norm2(x)) + x
        return x


class BackgroundEncoder(ModelMixin, ConfigMixin):
    """The threshold embedder and the background recovery transformer, saved as one component."""

    @register_to_config
    def __init__(
        self,
        dim: int = 1024,
        layers: int = 6,
        learned_queries: int = 256,
        head_dim: int = 64,
        mlp_ratio: int = 4,
        threshold_sinusoidal_dim: int = 256,
    ) -> None:
        super().__init__()
        self.threshold_embedder = ThresholdEmbedder(threshold_sinusoidal_dim, dim)
        self.transformer = RecoveryTransformer(dim, layers, learned_queries, head_dim, mlp_ratio)

    def threshold_embedding(self, threshold: float) -> torch.Tensor:
        """(1, 1, dim): added to a token set built with mask threshold ``threshold``."""
        return self.threshold_embedder(torch.tensor([threshold], device=self.device))

    def recover(self, whited_out_tokens: torch.Tensor, threshold: float) -> torch.Tensor:
        """Background tokens (B, learned_queries, dim) from the tokens of the whited-out reference."""
        return self.transformer(
            whited_out_tokens + self.threshold_embedding(threshold).to(whited_out_tokens.dtype)
        )

    def forward(self, whited_out_tokens: torch.Tensor, threshold: float) -> torch.Tensor:
        return self.recover(whited_out_tokens, threshold)
