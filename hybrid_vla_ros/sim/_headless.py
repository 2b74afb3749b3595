"""Choose the headless OpenGL back-end for MuJoCo: EGL, with OSMesa as fallback.

MuJoCo picks its OpenGL platform when ``mujoco`` is first imported, from ``MUJOCO_GL`` (and
PyOpenGL from ``PYOPENGL_PLATFORM``). Every module of this package that imports mujoco
imports this module first, so that an unset ``MUJOCO_GL`` becomes ``egl`` where an EGL
library is installed, else ``osmesa`` where OSMesa is. A value the user set is kept.

If mujoco was imported earlier with no usable platform (``MUJOCO_GL`` unset and no X
display: GLFW), `ensure_offscreen` switches MuJoCo's context class to EGL or OSMesa before
the first renderer is made.
"""

from __future__ import annotations

import ctypes.util
import os
import sys

_LIBRARIES = (('egl', 'EGL'), ('osmesa', 'OSMesa'))


def _installed_backends() -> list:
    """Headless back-ends whose library is installed, preferred first."""
    return [name for name, lib in _LIBRARIES if ctypes.util.find_library(lib)]


def configure() -> str:
    """Set ``MUJOCO_GL``/``PYOPENGL_PLATFORM`` for offscreen rendering; return the back-end.

    Changes nothing once mujoco is imported (its choice is then fixed; see `ensure_offscreen`).
    """
    if 'mujoco' not in sys.modules and not os.environ.get('MUJOCO_GL'):
        installed = _installed_backends()
        if installed:
            os.environ['MUJOCO_GL'] = installed[0]
    backend = os.environ.get('MUJOCO_GL', '')
    if backend in ('egl', 'osmesa') and 'OpenGL' not in sys.modules:
        os.environ.setdefault('PYOPENGL_PLATFORM', backend)
    return backend


def ensure_offscreen() -> str:
    """Make sure MuJoCo's context class can render without a display; return its back-end.

    Raises:
        RuntimeError: no headless back-end can be loaded (says what to install).

    """
    from mujoco import gl_context
    current = getattr(gl_context, 'GLContext', None)
    module = getattr(current, '__module__', '') or ''
    if current is not None and not (module.startswith('mujoco.glfw')
                                    and not os.environ.get('DISPLAY')):
        return module.rsplit('.', 1)[-1] if module.startswith('mujoco.') else module
    errors = []
    for name in _installed_backends():
        platform = os.environ.get('PYOPENGL_PLATFORM')
        if platform and platform != name:
            errors.append(f'{name}: PYOPENGL_PLATFORM is {platform!r}')
            continue
        try:
            context = __import__(f'mujoco.{name}', fromlist=['GLContext']).GLContext
        except Exception as exc:  # a broken driver fails in many ways
            errors.append(f'{name}: {exc}')
            continue
        gl_context.GLContext = context
        return name
    raise RuntimeError(
        'no headless OpenGL back-end for MuJoCo (' + ('; '.join(errors) or 'neither libEGL '
        'nor libOSMesa is installed') + '). Install libegl1 (or libosmesa6) and set '
        'MUJOCO_GL=egl (or osmesa) before starting Python')


BACKEND = configure()
