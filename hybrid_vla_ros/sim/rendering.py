"""Offscreen rendering of named model cameras with MuJoCo's fast settings.

Headless: ``MUJOCO_GL=egl`` (OSMesa as fallback, chosen in `_headless`). Shadows,
reflections and multisampling are switched off, which takes a 128x128 frame from about
100 ms to a few ms on a CPU-only machine. Images come back as (H, W, 3) uint8 RGB, row 0 at
the top; cameras are expected to be upright in the model (the suites fix Meta-World's
upside-down built-in cameras when they build the model).
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

from . import _headless  # noqa: F401  (sets MUJOCO_GL before mujoco is imported)

import mujoco
import numpy as np


def parse_image_size(size) -> Tuple[int, int]:
    """(height, width) from an int (square), a (h, w) pair or a string ``'128'``/``'96x128'``."""
    if isinstance(size, str):
        parts = size.lower().split('x')
        if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f'image size {size!r}: expected N or HxW, e.g. 128 or 96x128')
        size = tuple(int(p) for p in parts) if len(parts) == 2 else int(parts[0])
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    height, width = (int(v) for v in size)
    if not (8 <= height <= 2048 and 8 <= width <= 2048):
        raise ValueError(f'image size {height}x{width}: each side must be 8..2048 pixels')
    return height, width


def look_at_quat(position, target) -> np.ndarray:
    """(4,) w, x, y, z quaternion of an upright camera at `position` looking at `target`."""
    position, target = np.asarray(position, float), np.asarray(target, float)
    forward = target - position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    # MuJoCo cameras look along their -z axis with +y up.
    mat = np.column_stack([right, up, -forward])
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat.reshape(-1))
    return quat


class CameraRenderer:
    """Renders the named cameras of one model at one size.

    Args:
        model: the compiled model; its offscreen buffer is grown to the image size and its
            multisampling switched off (a model-wide visual setting, harmless to physics).
        cameras: camera names in the model.
        height, width: image size in pixels.

    """

    def __init__(self, model: mujoco.MjModel, cameras: Sequence[str], height: int,
                 width: int) -> None:
        self._renderer = None
        missing = [c for c in cameras if mujoco.mj_name2id(
            model, mujoco.mjtObj.mjOBJ_CAMERA, c) < 0]
        if missing:
            names = [model.camera(i).name for i in range(model.ncam)]
            raise ValueError(f'unknown camera(s) {", ".join(missing)}; the model has '
                             f'{", ".join(names)}')
        self.cameras = tuple(cameras)
        self.height, self.width = height, width
        model.vis.quality.offsamples = 0
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        backend = _headless.ensure_offscreen()
        try:
            self._renderer = mujoco.Renderer(model, height, width)
        except Exception as exc:  # the GL back-end reports failures in many types
            raise RuntimeError(
                f'cannot create an offscreen OpenGL context with the {backend} back-end: '
                f'{exc}. Install EGL (libegl1) or OSMesa (libosmesa6) and set MUJOCO_GL=egl '
                f'or MUJOCO_GL=osmesa') from exc
        flags = self._renderer.scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0

    def render(self, data: mujoco.MjData) -> Dict[str, np.ndarray]:
        """Camera name -> (H, W, 3) uint8 RGB image of the current state of `data`."""
        images = {}
        for name in self.cameras:
            self._renderer.update_scene(data, camera=name)
            images[name] = self._renderer.render()  # a fresh array every call
        return images

    def close(self) -> None:
        """Free the OpenGL context (idempotent)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __del__(self):
        # Free the context while the interpreter is still whole; at exit EGL may be gone.
        try:
            self.close()
        except Exception:
            pass
