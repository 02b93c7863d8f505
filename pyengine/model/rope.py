"""Rotary position embedding: the inverse frequencies of each rope type, and cos/sin per token.

RoPE rotates each pair of query/key features (i, i + Dh/2) by the angle `position * inv_freq[i]`,
with `inv_freq[i] = theta ** (-2i / Dh)`. Long-context variants change `inv_freq` (and, for
YaRN, scale cos/sin by an attention factor):

    default   theta ** (-2i/Dh)
    linear    default / factor                       (positions interpolated by `factor`)
    dynamic   default with theta grown once the sequence outgrows max_position_embeddings
              (NTK-aware); recomputed from each sequence's current length, as transformers does
    llama3    long wavelengths / factor, short ones kept, a smooth ramp between
    yarn      per-dimension blend of interpolation and extrapolation, cos/sin * attention_factor
    longrope  default / short_factor[i], or / long_factor[i] once the sequence outgrows
              original_max_position_embeddings (Phi-3); cos/sin * attention_factor

References: the RoFormer paper; "YaRN" (Peng et al. 2023); "LongRoPE" (Ding et al. 2024); Meta's Llama 3.1 rope scaling;
transformers' `modeling_rope_utils.py`, whose numbers the parity tests pin.
"""

from __future__ import annotations

import math
from typing import Any

from pyengine.model.config import ModelConfig, RopeScaling


class RotaryEmbedding:
    """cos/sin tables for the packed tokens of one step: [N] positions -> two [N, Dh/2] arrays.

    (With Phi-3's partial_rotary_factor only part of a head rotates: R < Dh/2 angles per token.)
    """

    def __init__(self, config: ModelConfig, xp: Any, rope: RopeScaling | None = None):
        """`rope`: these parameters instead of `config.rope` (Gemma 3's sliding layers have their own)."""
        if (rope or config.rope) is None:
            raise ValueError(f"{config.architecture} has no rotary embedding")
        self.xp = xp
        self.rope: RopeScaling = rope or config.rope
        self.head_dim = int(config.head_dim * self.rope.partial_rotary_factor)  # the rotated part of a head
        self.max_position_embeddings = config.max_position_embeddings
        # dynamic and longrope change their frequencies for sequences longer than this
        self.scaled_after = (self.rope.original_max_position_embeddings if self.rope.rope_type == "longrope"
                             else config.max_position_embeddings)
        self.inv_freq, self.attention_factor = self._inv_freq(self.scaled_after)
        if self.rope.rope_type == "longrope":  # its second set of frequencies, made once
            self.long_inv_freq = self._inv_freq(self.scaled_after + 1)[0]

    def cos_sin(self, positions: Any, query_start_loc: tuple[int, ...],
                context_lens: tuple[int, ...]) -> tuple[Any, Any]:
        """[N] positions -> (cos [N, Dh/2], sin [N, Dh/2]), float32."""
        xp = self.xp
        inv_freq = self.inv_freq[None, :]  # [1, Dh/2]
        if self.rope.rope_type in ("dynamic", "longrope") and max(context_lens) > self.scaled_after:
            # Each sequence scales by its own length (= its largest position + 1 this step).
            rows = []
            for b, seq_len in enumerate(context_lens):
                num_tokens = query_start_loc[b + 1] - query_start_loc[b]
                freq_b = self._scaled_inv_freq(seq_len)
                rows.append(xp.broadcast_to(freq_b[None, :], (num_tokens, freq_b.shape[0])))
            inv_freq = xp.concatenate(rows, axis=0)  # [N, Dh/2]
        angles = positions.astype(xp.float32)[:, None] * inv_freq  # [N, Dh/2]
        return xp.cos(angles) * self.attention_factor, xp.sin(angles) * self.attention_factor

    # --------------------------------------------------------------------------------------------

    def _scaled_inv_freq(self, seq_len: int) -> Any:
        """[Dh/2] frequencies of a sequence of `seq_len` tokens: dynamic's recomputed, longrope's short or long."""
        if self.rope.rope_type == "longrope":
            return self.long_inv_freq if seq_len > self.scaled_after else self.inv_freq
        return self._inv_freq(max(seq_len, self.scaled_after))[0]

    def _inv_freq(self, seq_len: int) -> tuple[Any, float]:
        """The [Dh/2] inverse frequencies (float32) and the cos/sin scale for this rope type."""
        xp, rope, dim = self.xp, self.rope, self.head_dim
        exponents = xp.arange(0, dim, 2).astype(xp.float32) / dim  # [Dh/2]
        base_freq = 1.0 / (xp.float32(rope.rope_theta) ** exponents)  # [Dh/2]
        kind = rope.rope_type
        if kind == "default":
            return base_freq, 1.0
        if kind == "linear":
            return base_freq / rope.factor, 1.0
        if kind == "dynamic":
            ratio = rope.factor * seq_len / self.max_position_embeddings - (rope.factor - 1)
            theta = rope.rope_theta * ratio ** (dim / (dim - 2))
            return 1.0 / (xp.float32(theta) ** exponents), 1.0
        if kind == "llama3":
            return self._llama3(base_freq), 1.0
        if kind == "yarn":
            return self._yarn(exponents)
        if kind == "longrope":
            return self._longrope(exponents, seq_len)
        raise ValueError(f"unsupported rope type {kind!r}")

    def _llama3(self, inv_freq: Any) -> Any:
        xp, rope = self.xp, self.rope
        old_context = rope.original_max_position_embeddings
        low_freq_wavelen = old_context / rope.low_freq_factor
        high_freq_wavelen = old_context / rope.high_freq_factor
        wavelen = 2 * math.pi / inv_freq  # [Dh/2]
        # long wavelengths (low frequencies) are interpolated, short ones kept
        scaled = xp.where(wavelen > low_freq_wavelen, inv_freq / rope.factor, inv_freq)
        smooth = (old_context / wavelen - rope.low_freq_factor) / (
            rope.high_freq_factor - rope.low_freq_factor
        )  # [Dh/2]
        smoothed = (1 - smooth) * scaled / rope.factor + smooth * scaled
        is_medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
        return xp.where(is_medium, smoothed, scaled).astype(xp.float32)

    def _longrope(self, exponents: Any, seq_len: int) -> tuple[Any, float]:
        """Each frequency divided by its own factor: the short ones up to the original context, then the long."""
        xp, rope = self.xp, self.rope
        original = rope.original_max_position_embeddings
        factors = rope.long_factor if seq_len > original else rope.short_factor
        inv_freq = 1.0 / (xp.asarray(factors, dtype=xp.float32) * xp.float32(rope.rope_theta) ** exponents)
        attention_factor = rope.attention_factor
        if attention_factor is None:  # the paper's choice, from how far the context was stretched
            attention_factor = math.sqrt(1 + math.log(rope.factor) / math.log(original)) if rope.factor > 1 else 1.0
        return inv_freq.astype(xp.float32), float(attention_factor)

    def _yarn(self, exponents: Any) -> tuple[Any, float]:
        xp, rope, dim = self.xp, self.rope, self.head_dim
        factor, base = rope.factor, rope.rope_theta
        original = rope.original_max_position_embeddings

        def mscale(scale: float, m: float = 1.0) -> float:
            return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

        attention_factor = rope.attention_factor
        if attention_factor is None:
            if rope.mscale and rope.mscale_all_dim:
                attention_factor = mscale(factor, rope.mscale) / mscale(factor, rope.mscale_all_dim)
            else:
                attention_factor = mscale(factor)

        def correction_dim(num_rotations: float) -> float:
            return dim * math.log(original / (num_rotations * 2 * math.pi)) / (2 * math.log(base))

        low, high = correction_dim(rope.beta_fast), correction_dim(rope.beta_slow)
        if rope.truncate:
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, dim - 1)
        if low == high:
            high += 0.001  # avoid dividing by zero in the ramp
        ramp = xp.clip((xp.arange(dim // 2).astype(xp.float32) - low) / (high - low), 0, 1)
        extrapolation_weight = 1 - ramp  # [Dh/2]: 1 keeps the original frequency
        pos_freqs = xp.float32(base) ** exponents  # [Dh/2]
        inv_freq = (1.0 / (factor * pos_freqs)) * (1 - extrapolation_weight) + (
            1.0 / pos_freqs
        ) * extrapolation_weight
        return inv_freq.astype(xp.float32), float(attention_factor)
