"""Rotary position embedding: each token's cos/sin, from each feature pair's inverse frequency.

RoPE rotates each pair of query/key features (i, i + Dh/2) by `position * inv_freq[i]`, with
`inv_freq[i] = theta ** (-2i / Dh)`. The long-context variants (linear, dynamic, llama3, yarn, longrope)
are rope_scaling.py's. References: the RoFormer paper; transformers' `modeling_rope_utils.py`.
"""

from __future__ import annotations

from typing import Any

from pyengine.model.config import ModelConfig, Rope


class RotaryEmbedding:
    """cos/sin tables for the packed tokens of one step: [N] positions -> two [N, Dh/2] arrays (R < Dh/2
    angles when only part of a head rotates: Phi-3's partial_rotary_factor)."""

    def __init__(self, config: ModelConfig, xp: Any, rope: Rope | None = None):
        """`rope`: these parameters instead of `config.rope` (Gemma 3's sliding layers have their own)."""
        if (rope or config.rope) is None:
            raise ValueError(f"{config.architecture} has no rotary embedding")
        self.xp = xp
        self.rope: Rope = rope or config.rope
        self.head_dim = int(config.head_dim * self.rope.partial_rotary_factor)  # the rotated part of a head
        exponents = xp.arange(0, self.head_dim, 2).astype(xp.float32) / self.head_dim  # [Dh/2]
        self.inv_freq = 1.0 / (xp.float32(self.rope.rope_theta) ** exponents)  # [Dh/2]

    def cos_sin(self, positions: Any, query_start_loc: tuple[int, ...],
                context_lens: tuple[int, ...]) -> tuple[Any, Any]:
        """[N] positions -> (cos [N, Dh/2], sin [N, Dh/2]), float32."""
        angles = positions.astype(self.xp.float32)[:, None] * self.inv_freq[None, :]  # [N, Dh/2]
        return self.xp.cos(angles), self.xp.sin(angles)


def rotary_embedding(config: ModelConfig, xp: Any, rope: Rope | None = None) -> RotaryEmbedding:
    """The rotary embedding of `rope` (None: `config.rope`), scaled (rope_scaling.py) if its type says so."""
    rope = rope or config.rope
    if rope is not None and rope.rope_type != "default":
        from pyengine.model.rope_scaling import ScaledRotaryEmbedding  # noqa: PLC0415  (a scaled rope loads it)
        return ScaledRotaryEmbedding(config, xp, rope)
    return RotaryEmbedding(config, xp, rope)
