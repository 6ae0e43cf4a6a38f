"""LAION aesthetic-predictor heads: small models that score an L2-normalised CLIP image
embedding on a ~1-10 scale.

Two published formats, both plain state dicts (``.pth`` via ``torch.save``, or ``.safetensors``):

- ``linear`` (LAION-AI/aesthetic-predictor, ``sa_0_4_vit_b_32_linear.pth`` /
  ``sa_0_4_vit_l_14_linear.pth``): one ``nn.Linear(d, 1)``, keys ``weight`` and ``bias``.
- ``mlp`` (christophschuhmann/improved-aesthetic-predictor,
  ``sac+logos+ava1-l14-linearMSE.pth``): ``nn.Sequential`` under ``layers``:
  ``Linear(d, 1024), Dropout, Linear(1024, 128), Dropout, Linear(128, 64), Dropout,
  Linear(64, 16), Linear(16, 1)``, keys ``layers.{0,2,4,6,7}.{weight,bias}``.

The input width ``d`` (512 for ViT-B, 768 for ViT-L/14) is read from the weights, so the
start-up check can compare it with the embedding model's width before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from curate.config import ConfigError

if TYPE_CHECKING:
    from curate.config.sections import AestheticHeadConfig

HeadKind = Literal["linear", "mlp"]

LINEAR_KEYS = frozenset({"weight", "bias"})
"""State-dict keys of the ``linear`` head."""

MLP_LINEAR_LAYERS = (0, 2, 4, 6, 7)
"""Indices of the ``Linear`` modules inside the ``mlp`` head's ``layers`` Sequential (the
others are dropouts, which own no weights)."""

MLP_DROPOUTS = {1: 0.2, 3: 0.2, 5: 0.1}
"""Dropout positions and rates of the ``mlp`` head (inactive in eval mode; kept so the module
is the published one)."""

MLP_KEYS = frozenset(f"layers.{i}.{p}" for i in MLP_LINEAR_LAYERS for p in ("weight", "bias"))
"""State-dict keys of the ``mlp`` head."""

KEY = "embed.aesthetic_head.path"


def read_state_dict(path: str | Path) -> dict:
    """Tensors of a head file; ``.safetensors`` or a torch pickle loaded with
    ``weights_only=True`` (no code from the file runs)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{KEY}: no such file {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            import torch

            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated or foreign files all mean: no usable head
        raise ConfigError(f"{KEY}: cannot read {path}: {type(e).__name__}: {e}") from None
    if not isinstance(state, dict):
        raise ConfigError(f"{KEY}: {path} holds a {type(state).__name__}, not a state dict")
    return state


def detect_kind(state: dict, path: str | Path) -> HeadKind:
    keys = set(state)
    if keys == LINEAR_KEYS:
        return "linear"
    if keys == MLP_KEYS:
        return "mlp"
    raise ConfigError(
        f"{KEY}: {path} is not a LAION aesthetic head: expected keys {sorted(LINEAR_KEYS)} "
        f"(linear) or layers.{{0,2,4,6,7}}.weight/bias (mlp), found {sorted(keys)[:8]}"
    )


class AestheticHead:
    """A loaded head in eval mode on the CPU (it is a few matrix products per keyframe)."""

    def __init__(self, cfg: AestheticHeadConfig) -> None:
        import torch
        from torch import nn

        if cfg.path is None:
            raise ConfigError(f"{KEY} is not set")
        state = read_state_dict(cfg.path)
        kind = detect_kind(state, cfg.path)
        if cfg.kind != "auto" and cfg.kind != kind:
            raise ConfigError(
                f"embed.aesthetic_head.kind: {cfg.kind!r}, but {cfg.path} holds a {kind} head"
            )
        try:
            if kind == "linear":
                out_dim, in_dim = state["weight"].shape
                module: nn.Module = nn.Linear(in_dim, out_dim)
            else:
                # Widths come from the weights; strict loading then checks every key.
                shapes = [tuple(state[f"layers.{i}.weight"].shape) for i in MLP_LINEAR_LAYERS]
                in_dim = shapes[0][1]
                for (_, wanted), (given, _) in zip(shapes[1:], shapes[:-1]):
                    if wanted != given:
                        raise ValueError(f"a layer takes {wanted} inputs but gets {given}")
                layers: list[nn.Module] = []
                for out_features, in_features in shapes:
                    layers.append(nn.Linear(in_features, out_features))
                    rate = MLP_DROPOUTS.get(len(layers))
                    if rate is not None:
                        layers.append(nn.Dropout(rate))
                module = nn.Module()
                module.layers = nn.Sequential(*layers)
            module.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
            out = state["weight" if kind == "linear" else "layers.7.weight"].shape[0]
            if out != 1:
                raise ValueError(f"the last layer has {out} outputs, not 1")
        except (RuntimeError, ValueError) as e:  # shape mismatches between layers
            raise ConfigError(f"{KEY}: {cfg.path} does not load as a {kind} head: {e}") from None
        self.kind: HeadKind = kind
        self.in_dim = int(in_dim)
        self.name = Path(cfg.path).name
        self._forward = module if kind == "linear" else module.layers
        self._forward.eval()
        self._torch = torch

    def score(self, unit_features: np.ndarray) -> np.ndarray:
        """One score per row of ``unit_features`` (L2-normalised CLIP image embeddings)."""
        torch = self._torch
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(unit_features, np.float32))
            return self._forward(x).reshape(-1).numpy().astype(np.float32)
