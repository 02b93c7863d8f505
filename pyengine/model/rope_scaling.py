"""Long-context rope: the scaled variants' parameters, as config.json spells them, and their frequencies.

Loaded for a checkpoint whose rope is scaled (config.py's `parse_rope`, rope.py's
`rotary_embedding`) or that is a Phi-3. Each variant changes the default inverse frequencies
`theta ** (-2i/Dh)` (and, for YaRN and LongRoPE, scales cos/sin by an attention factor):

    linear    default / factor                       (positions interpolated by `factor`)
    dynamic   default with theta grown once the sequence outgrows max_position_embeddings
              (NTK-aware); recomputed from each sequence's current length, as transformers does
    llama3    long wavelengths / factor, short ones kept, a smooth ramp between
    yarn      per-dimension blend of interpolation and extrapolation, cos/sin * attention_factor
    longrope  default / short_factor[i], or / long_factor[i] once the sequence outgrows
              original_max_position_embeddings (Phi-3); cos/sin * attention_factor

References: "YaRN" (Peng et al. 2023); "LongRoPE" (Ding et al. 2024); Meta's Llama 3.1 rope scaling;
transformers' `modeling_rope_utils.py`, whose numbers the parity tests pin.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from pyengine.model.config import ConfigError, ModelConfig, Rope, parse_rope
from pyengine.model.rope import RotaryEmbedding

ROPE_TYPES = ("default", "linear", "dynamic", "llama3", "yarn", "longrope")


@dataclasses.dataclass(frozen=True)
class RopeScaling(Rope):
    """A scaled rope's parameters, normalised from `rope_scaling` or `rope_parameters`."""

    factor: float = 1.0
    # llama3
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    # llama3 and yarn: the context length the model was pretrained with
    original_max_position_embeddings: int | None = None
    # yarn
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    attention_factor: float | None = None
    mscale: float | None = None
    mscale_all_dim: float | None = None
    truncate: bool = True
    # longrope (Phi-3): per-frequency divisors below / above original_max_position_embeddings
    short_factor: tuple[float, ...] | None = None
    long_factor: tuple[float, ...] | None = None


def rope_scaling(raw: dict[str, Any], rope_type: str, theta: float, params: dict[str, Any],
                 allow_partial: bool) -> RopeScaling:
    """The rope of config.json `raw`: its type and theta, and its other parameters `params`."""
    if rope_type in ("llama3", "yarn", "longrope"):
        params.setdefault(
            "original_max_position_embeddings",
            raw.get("original_max_position_embeddings") or raw.get("max_position_embeddings"),
        )
    if rope_type == "longrope":  # without a factor: how far max_position_embeddings stretches the original
        params["factor"] = params.get("factor") or raw["max_position_embeddings"] / params["original_max_position_embeddings"]
    known = {f.name for f in dataclasses.fields(RopeScaling)}
    unknown = sorted(set(params) - known)
    if params.get("partial_rotary_factor", 1.0) != 1.0 and not allow_partial:
        raise ConfigError("config.json: partial_rotary_factor != 1 is supported for Phi-3 only")
    if unknown:
        raise ConfigError(f"config.json: unknown rope parameters {unknown} for rope type {rope_type!r}")
    clean = {k: v for k, v in params.items() if v is not None}
    if "truncate" in clean:
        clean["truncate"] = bool(clean["truncate"])
    for key in ("short_factor", "long_factor"):
        if key in clean:
            clean[key] = tuple(float(f) for f in clean[key])
    return RopeScaling(rope_type=rope_type, rope_theta=theta, **clean)


def phi3_rope(raw: dict[str, Any]) -> Rope:
    """Phi-3's LongRoPE, named "longrope" (older files: "su"; transformers reads "yarn" as it too), with
    the top-level original_max_position_embeddings (default 4096) over one inside the parameters."""
    params = dict(raw.get("rope_parameters") or {})
    params.update(raw.get("rope_scaling") or {})
    if (params.get("rope_type") or params.get("type")) in ("su", "yarn", "longrope"):
        params.pop("type", None)
        params.update(rope_type="longrope",
                      original_max_position_embeddings=raw.get("original_max_position_embeddings", 4096))
    params.setdefault("partial_rotary_factor", raw.get("partial_rotary_factor", 1.0))
    return parse_rope({**raw, "rope_parameters": params, "rope_scaling": None}, allow_partial=True)


def check_rope(rope: Any, head_dim: int) -> None:
    """A supported type, and LongRoPE's factors one per rotated pair. Raises ConfigError."""
    if rope.rope_type not in ROPE_TYPES:
        raise ConfigError(f"config.json: unsupported rope type {rope.rope_type!r}; supported: " + ", ".join(ROPE_TYPES))
    pairs = int(head_dim * rope.partial_rotary_factor) // 2
    if rope.rope_type == "longrope" and not len(rope.short_factor or ()) == len(rope.long_factor or ()) == pairs:
        raise ConfigError(f"config.json: longrope needs short_factor and long_factor of {pairs} numbers "
                          "each (head_dim * partial_rotary_factor / 2)")


class ScaledRotaryEmbedding(RotaryEmbedding):
    """RotaryEmbedding with a scaled variant's frequencies (and, for dynamic and longrope, per sequence)."""

    rope: RopeScaling

    def __init__(self, config: ModelConfig, xp: Any, rope: Rope | None = None):
        super().__init__(config, xp, rope)
        self.max_position_embeddings = config.max_position_embeddings
        # dynamic and longrope change their frequencies for sequences longer than this
        self.scaled_after = (self.rope.original_max_position_embeddings if self.rope.rope_type == "longrope"
                             else config.max_position_embeddings)
        self.inv_freq, self.attention_factor = self._inv_freq(self.scaled_after)
        if self.rope.rope_type == "longrope":  # its second set of frequencies, made once
            self.long_inv_freq = self._inv_freq(self.scaled_after + 1)[0]

    def cos_sin(self, positions: Any, query_start_loc: tuple[int, ...],
                context_lens: tuple[int, ...]) -> tuple[Any, Any]:
        """[N] positions -> (cos [N, Dh/2], sin [N, Dh/2]), float32, scaled by the variant's attention factor."""
        xp = self.xp
        inv_freq = self.token_inv_freq(query_start_loc, context_lens)  # [1 or N, Dh/2]
        angles = positions.astype(xp.float32)[:, None] * inv_freq  # [N, Dh/2]
        return xp.cos(angles) * self.attention_factor, xp.sin(angles) * self.attention_factor

    def token_inv_freq(self, query_start_loc: tuple[int, ...], context_lens: tuple[int, ...]) -> Any:
        """[1, Dh/2], or [N, Dh/2] when a sequence outgrew `scaled_after` (dynamic, longrope)."""
        xp = self.xp
        if self.rope.rope_type not in ("dynamic", "longrope") or max(context_lens) <= self.scaled_after:
            return self.inv_freq[None, :]
        # Each sequence scales by its own length (= its largest position + 1 this step).
        rows = []
        for b, seq_len in enumerate(context_lens):
            num_tokens = query_start_loc[b + 1] - query_start_loc[b]
            freq_b = self._scaled_inv_freq(seq_len)
            rows.append(xp.broadcast_to(freq_b[None, :], (num_tokens, freq_b.shape[0])))
        return xp.concatenate(rows, axis=0)  # [N, Dh/2]

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
