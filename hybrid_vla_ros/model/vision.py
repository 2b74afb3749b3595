"""Vision encoders: uint8 camera images -> visual tokens.

Every encoder takes ``images`` (B, N, H, W, 3) uint8 RGB — N cameras in the order of the
observation spec, the layout a ROS ``rgb8`` image already has — normalizes them inside (so
the exported graph takes raw bytes), and returns tokens (B, T, D) float32, with each
camera's tokens tagged by a learned camera embedding.

``token_kind`` says what the tokens are: ``encoded`` (a vision encoder's output, for the
modular + transformer composition) or ``patches`` (a bare patch embedding, for the
end-to-end + modular composition whose fusion transformer sees raw patches).
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional

import torch
from torch import nn

from ..schema import ConfigError, spec
from .config import ObservationSpec
from .registry import register

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def _check_same_size(observation: ObservationSpec) -> tuple:
    sizes = {(c.height, c.width) for c in observation.cameras}
    if len(sizes) != 1:
        raise ConfigError('observation.cameras: all cameras must share one height and width '
                          f'(the data layer resizes them), got {sorted(sizes)}')
    return sizes.pop()


class VisionEncoder(nn.Module):
    """Base class: image normalization, camera embeddings, shape bookkeeping.

    Subclasses implement `encode_frames` ((B*N, 3, H, W) float normalized ->
    (B*N, T_cam, D)) and set `out_dim` and `tokens_per_camera`.
    """

    token_kind = 'encoded'

    def __init__(self, observation: ObservationSpec, mean: List[float], std: List[float]):
        super().__init__()
        self.num_cameras = len(observation.cameras)
        self.height, self.width = _check_same_size(observation)
        self.register_buffer('pixel_mean', torch.tensor(mean).view(1, 3, 1, 1) * 255.0,
                             persistent=False)
        self.register_buffer('pixel_std', torch.tensor(std).view(1, 3, 1, 1) * 255.0,
                             persistent=False)
        self.out_dim = 0
        self.tokens_per_camera = 0

    @property
    def num_tokens(self) -> int:
        """Total number of visual tokens T over all cameras."""
        return self.tokens_per_camera * self.num_cameras

    def _init_camera_embedding(self) -> None:
        self.camera_embedding = nn.Parameter(torch.randn(self.num_cameras, self.out_dim) * 0.02)

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(B*N, 3, H, W) normalized float32 -> (B*N, T_cam, D) float32."""
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, N, H, W, 3) uint8 -> visual tokens (B, N*T_cam, D) float32."""
        b, n, h, w, _ = images.shape
        frames = images.reshape(b * n, h, w, 3).permute(0, 3, 1, 2).to(self.pixel_mean.dtype)
        frames = (frames - self.pixel_mean) / self.pixel_std
        tokens = self.encode_frames(frames)
        tokens = tokens.reshape(b, n, self.tokens_per_camera, self.out_dim)
        tokens = tokens + self.camera_embedding[None, :, None, :]
        return tokens.reshape(b, n * self.tokens_per_camera, self.out_dim)


class GridPositionEmbedding(nn.Module):
    """Learned 2-D position embedding for an (h, w) token grid: row + column tables."""

    def __init__(self, h: int, w: int, dim: int):
        super().__init__()
        self.rows = nn.Parameter(torch.randn(h, 1, dim) * 0.02)
        self.cols = nn.Parameter(torch.randn(1, w, dim) * 0.02)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        """grid (B, D, h, w) -> tokens (B, h*w, D) with position added (row-major)."""
        b, d, h, w = grid.shape
        pos = (self.rows + self.cols).reshape(h * w, d)
        return grid.flatten(2).transpose(1, 2) + pos


@register('vision', 'cnn')
class CnnVisionEncoder(VisionEncoder):
    """A small convolutional encoder trained from scratch.

    Each stage halves the resolution (3x3 stride-2 conv, GroupNorm, GELU, then
    `extra_convs` 3x3 convs; the high-resolution stages skip them by default, which halves
    the compute at little cost), so 5 stages turn a 128x128 image into a 4x4 map = 16 tokens
    per camera; a 1x1 projection gives width `dim`, and a learned 2-D position embedding is
    added. With ``keypoints: K`` a spatial-softmax head reads a finer map (``keypoint_stage``)
    and appends K tokens, one per keypoint, each embedding that keypoint's expected image
    position (x, y in [-1, 1]) — a precise "where" that the coarse grid lacks.
    """

    @dataclasses.dataclass
    class Config:
        """YAML keys of this component, with their defaults."""

        channels: List[int] = spec(default_factory=lambda: [32, 64, 128, 128, 256],
                                   doc='output channels of each stride-2 stage')
        extra_convs: Optional[List[int]] = spec(
            None, doc='3x3 convs after each stage\'s stride-2 conv, one entry per stage; '
                      'default: 0 for the first two (high-resolution) stages when there are '
                      'more than two, 1 for the rest')
        dim: int = spec(256, minimum=8, doc='token width D')
        groups: int = spec(8, minimum=1, doc='GroupNorm groups (must divide every channel)')
        mean: List[float] = spec(default_factory=lambda: list(IMAGENET_MEAN),
                                 doc='RGB mean in [0, 1] subtracted inside the graph')
        std: List[float] = spec(default_factory=lambda: list(IMAGENET_STD),
                                doc='RGB std in [0, 1] divided inside the graph')
        coord_channels: bool = spec(False, doc='append x and y pixel coordinates in [-1, 1] '
                                               'as two input channels (CoordConv: helps '
                                               'the network say where things are)')
        keypoints: int = spec(0, minimum=0, doc='spatial-softmax keypoints per camera, each '
                                                'one more token carrying an image position '
                                                '(0 = off)')
        keypoint_stage: Optional[int] = spec(
            None, doc='stage (0-based) whose output map the keypoints are read from; '
                      'default: the third-to-last (16x16 for 5 stages on 128x128)')

        def validate(self, path: str) -> None:
            """Check stage widths against the GroupNorm group count."""
            if not self.channels:
                raise ConfigError(f'{path}.channels: at least one stage is required')
            for i, c in enumerate(self.channels):
                if c % self.groups:
                    raise ConfigError(f'{path}.channels[{i}]: {c} is not divisible by '
                                      f'groups={self.groups}')
            if self.extra_convs is not None:
                if len(self.extra_convs) != len(self.channels):
                    raise ConfigError(f'{path}.extra_convs: {len(self.extra_convs)} entries '
                                      f'for {len(self.channels)} stages (one per stage)')
                if any(n < 0 for n in self.extra_convs):
                    raise ConfigError(f'{path}.extra_convs: counts must be >= 0')
            if self.keypoint_stage is not None and not (
                    0 <= self.keypoint_stage < len(self.channels)):
                raise ConfigError(f'{path}.keypoint_stage: {self.keypoint_stage} is not a '
                                  f'stage index (0..{len(self.channels) - 1})')
            if len(self.mean) != 3 or len(self.std) != 3:
                raise ConfigError(f'{path}.mean/std: three values (R, G, B) each are required')

        def convs_per_stage(self) -> List[int]:
            """Extra 3x3 convs of each stage (resolving the default)."""
            if self.extra_convs is not None:
                return list(self.extra_convs)
            n = len(self.channels)
            return [0 if (i < 2 and n > 2) else 1 for i in range(n)]

        def keypoint_stage_index(self) -> int:
            """The stage feeding the keypoints (resolving the default)."""
            if self.keypoint_stage is not None:
                return self.keypoint_stage
            return max(0, len(self.channels) - 3)

    def __init__(self, cfg: CnnVisionEncoder.Config, observation: ObservationSpec):
        super().__init__(observation, cfg.mean, cfg.std)
        layers = []
        stage_ends = []
        c_in = 5 if cfg.coord_channels else 3
        if cfg.coord_channels:
            ys = torch.linspace(-1.0, 1.0, self.height).view(1, 1, -1, 1)
            xs = torch.linspace(-1.0, 1.0, self.width).view(1, 1, 1, -1)
            coords = torch.cat([xs.expand(1, 1, self.height, self.width),
                                ys.expand(1, 1, self.height, self.width)], dim=1)
            self.register_buffer('coords', coords, persistent=False)
        else:
            self.coords = None
        for c, n_extra in zip(cfg.channels, cfg.convs_per_stage(), strict=True):
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(cfg.groups, c),
                       nn.GELU()]
            for _ in range(n_extra):
                layers += [nn.Conv2d(c, c, 3, padding=1), nn.GroupNorm(cfg.groups, c), nn.GELU()]
            c_in = c
            stage_ends.append(len(layers))
        self.backbone = nn.Sequential(*layers)
        if cfg.keypoints:
            stage = cfg.keypoint_stage_index()
            # One Sequential split in two (instead of per-stage modules) keeps parameter names,
            # so checkpoints without keypoints load unchanged.
            self.keypoint_split = stage_ends[stage]
            self.keypoints = SpatialSoftmaxKeypoints(cfg.channels[stage], cfg.keypoints, cfg.dim)
        else:
            self.keypoint_split = len(layers)
            self.keypoints = None
        self.project = nn.Conv2d(c_in, cfg.dim, 1)
        h, w = self.height, self.width
        for _ in cfg.channels:
            h, w = (h + 1) // 2, (w + 1) // 2
        self.grid = (h, w)
        self.position = GridPositionEmbedding(h, w, cfg.dim)
        self.out_dim = cfg.dim
        self.tokens_per_camera = h * w + cfg.keypoints
        self._init_camera_embedding()

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(B*N, 3, H, W) -> (B*N, h*w + keypoints, dim): grid tokens, then keypoints."""
        if self.coords is not None:
            frames = torch.cat([frames, self.coords.expand(frames.shape[0], -1, -1, -1)], 1)
        if self.keypoints is None:
            return self.position(self.project(self.backbone(frames)))
        x = frames
        for i, layer in enumerate(self.backbone):
            if i == self.keypoint_split:
                keypoint_tokens = self.keypoints(x)
            x = layer(x)
        if self.keypoint_split == len(self.backbone):
            keypoint_tokens = self.keypoints(x)
        return torch.cat([self.position(self.project(x)), keypoint_tokens], dim=1)


class SpatialSoftmaxKeypoints(nn.Module):
    """Spatial soft-argmax keypoints (Levine et al. 2016) turned into tokens.

    A 1x1 conv makes K heat maps from a (B, C, h, w) feature map; a softmax over the h*w
    positions (learned temperature per keypoint) gives each keypoint's expected position
    (x, y), both in [-1, 1] (x left to right, y top to bottom). Each position is embedded
    with Fourier features (frequencies 1, 2, 4, 8 x pi) and a linear layer, plus a learned
    per-keypoint embedding that says which keypoint it is. Output (B, K, dim) float32.
    """

    FREQUENCIES = (1.0, 2.0, 4.0, 8.0)

    def __init__(self, channels: int, keypoints: int, dim: int):
        super().__init__()
        self.heatmap = nn.Conv2d(channels, keypoints, 1)
        self.log_temperature = nn.Parameter(torch.zeros(keypoints))
        self.register_buffer('frequencies', torch.tensor(self.FREQUENCIES) * torch.pi,
                             persistent=False)
        self.embed = nn.Linear(2 + 4 * len(self.FREQUENCIES), dim)
        self.identity = nn.Parameter(torch.randn(keypoints, dim) * 0.02)

    def positions(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, C, h, w) -> expected keypoint positions (B, K, 2) in [-1, 1]."""
        b, _, h, w = features.shape
        logits = self.heatmap(features).flatten(2)               # (B, K, h*w)
        weights = torch.softmax(logits * self.log_temperature.exp()[None, :, None], dim=-1)
        ys = torch.linspace(-1.0, 1.0, h, device=features.device, dtype=features.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=features.device, dtype=features.dtype)
        grid = torch.stack([xs.repeat(h), ys.repeat_interleave(w)], dim=-1)   # (h*w, 2)
        return weights @ grid

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, C, h, w) -> keypoint tokens (B, K, dim)."""
        xy = self.positions(features)
        angles = xy[..., None] * self.frequencies                # (B, K, 2, F)
        fourier = torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(2)
        return self.embed(torch.cat([xy, fourier], dim=-1)) + self.identity


@register('vision', 'patch')
class PatchVisionEncoder(VisionEncoder):
    """A bare patch embedding (non-overlapping `patch_size` squares, linear projection,
    2-D position): the only vision part of the end-to-end + modular (early) composition,
    whose fusion transformer does all the visual processing."""

    token_kind = 'patches'

    @dataclasses.dataclass
    class Config:
        """YAML keys of this component, with their defaults."""

        patch_size: int = spec(16, minimum=2, doc='patch side, pixels (must divide H and W)')
        dim: int = spec(256, minimum=8, doc='patch token width D')
        mean: List[float] = spec(default_factory=lambda: list(IMAGENET_MEAN),
                                 doc='RGB mean in [0, 1]')
        std: List[float] = spec(default_factory=lambda: list(IMAGENET_STD),
                                doc='RGB std in [0, 1]')

    def __init__(self, cfg: PatchVisionEncoder.Config, observation: ObservationSpec):
        super().__init__(observation, cfg.mean, cfg.std)
        if self.height % cfg.patch_size or self.width % cfg.patch_size:
            raise ConfigError(f'vision.patch_size: {cfg.patch_size} does not divide the image '
                              f'size {self.height}x{self.width}')
        self.embed = nn.Conv2d(3, cfg.dim, cfg.patch_size, stride=cfg.patch_size)
        h, w = self.height // cfg.patch_size, self.width // cfg.patch_size
        self.position = GridPositionEmbedding(h, w, cfg.dim)
        self.out_dim = cfg.dim
        self.tokens_per_camera = h * w
        self._init_camera_embedding()

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(B*N, 3, H, W) -> (B*N, (H/p)*(W/p), dim)."""
        return self.position(self.embed(frames))


@register('vision', 'hf')
class HFVisionEncoder(VisionEncoder):
    """Any transformers vision backbone, loaded from a local directory (``model``) or built
    from a transformers config mapping (``hf_config``, e.g. ``{model_type: vit, ...}``).

    The backbone's ``last_hidden_state`` becomes the tokens: (B, S, D) for ViT-like models,
    or a (B, C, h, w) map flattened to (B, h*w, C) for convolutional ones. Frozen by default;
    a frozen backbone loaded from ``model`` is not stored in checkpoints (it is re-read from
    its directory).
    """

    @dataclasses.dataclass
    class Config:
        """YAML keys of this component, with their defaults."""

        model: Optional[str] = spec(None, doc='local HF model directory')
        hf_config: Optional[dict] = spec(None, doc='transformers config mapping with '
                                                   'model_type, used when model is not set')
        freeze: bool = spec(True, doc='keep the backbone weights fixed')
        mean: List[float] = spec(default_factory=lambda: list(IMAGENET_MEAN),
                                 doc='RGB mean in [0, 1]')
        std: List[float] = spec(default_factory=lambda: list(IMAGENET_STD),
                                doc='RGB std in [0, 1]')

        def validate(self, path: str) -> None:
            """Exactly one of model / hf_config."""
            if (self.model is None) == (self.hf_config is None):
                raise ConfigError(f'{path}: set exactly one of "model" (a local HF model '
                                  'directory) or "hf_config" (a transformers config mapping)')
            if self.hf_config is not None and 'model_type' not in self.hf_config:
                raise ConfigError(f'{path}.hf_config.model_type: required key is missing')

    def __init__(self, cfg: HFVisionEncoder.Config, observation: ObservationSpec):
        super().__init__(observation, cfg.mean, cfg.std)
        from .hf import load_hf_model, hf_config_from_mapping
        if cfg.model is not None:
            self.backbone = load_hf_model(cfg.model, 'vision.model')
        else:
            from transformers import AutoModel
            self.backbone = AutoModel.from_config(
                hf_config_from_mapping(cfg.hf_config, 'vision.hf_config'))
        # A pooling head (ViT, BERT-style) is never used for tokens; drop its weights so they
        # neither sit idle in the optimizer nor in checkpoints.
        if any(True for _ in getattr(getattr(self.backbone, 'pooler', None), 'parameters',
                                     lambda: [])()):
            self.backbone.pooler = None
        self.frozen = cfg.freeze
        self.external = cfg.freeze and cfg.model is not None
        if cfg.freeze:
            self.backbone.requires_grad_(False)
            self.backbone.eval()
        with torch.no_grad():
            probe = self._backbone_tokens(torch.zeros(1, 3, self.height, self.width))
        self.tokens_per_camera, self.out_dim = probe.shape[1], probe.shape[2]
        self._init_camera_embedding()

    def train(self, mode: bool = True):
        """Keep a frozen backbone in eval mode (no dropout / batch-norm updates)."""
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def _backbone_tokens(self, frames: torch.Tensor) -> torch.Tensor:
        out = self.backbone(pixel_values=frames).last_hidden_state
        if out.dim() == 4:
            out = out.flatten(2).transpose(1, 2)
        return out

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(B*N, 3, H, W) -> (B*N, S, hidden)."""
        return self._backbone_tokens(frames)

    def frozen_prefixes(self) -> List[str]:
        """Parameter-name prefixes the config freezes; training never unfreezes them."""
        return ['backbone.'] if self.frozen else []

    def external_state_prefixes(self) -> List[str]:
        """State-dict prefixes re-loaded from disk instead of stored in a checkpoint."""
        return ['backbone.'] if self.external else []
