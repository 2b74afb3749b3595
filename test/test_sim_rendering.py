"""Rendered images are upright: coloured objects appear where the camera geometry puts them."""

import os
import subprocess
import sys

import mujoco
import numpy as np
import pytest

from hybrid_vla_ros.sim import make_env
from hybrid_vla_ros.sim.rendering import parse_image_size

PURE = {'red': (0, 1, 2), 'green': (1, 0, 2), 'blue': (2, 0, 1)}


def colour_mask(image, colour):
    """Pixels of a saturated colour: one channel dominant, or yellow (red + green)."""
    img = image.astype(int)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    if colour == 'yellow':
        return (r > 150) & (g > 120) & (b < 0.4 * g)
    main, a, c = (img[..., i] for i in PURE[colour])
    return (main > 90) & (main > 2 * a) & (main > 2 * c)


def colour_centroid(image, colour):
    """(row, col) mean of the pixels of `colour` (None when there are fewer than 3)."""
    mask = colour_mask(image, colour)
    if mask.sum() < 3:
        return None
    rows, cols = np.nonzero(mask)
    return rows.mean(), cols.mean()


def project(model, data, camera, point, height, width):
    """(row, col) of a world point in an upright pinhole image of `camera`."""
    cam = model.camera(camera).id
    rot = data.cam_xmat[cam].reshape(3, 3)  # columns: camera x (right), y (up), z (back)
    local = rot.T @ (np.asarray(point) - data.cam_xpos[cam])
    focal = 0.5 * height / np.tan(np.radians(model.cam_fovy[cam]) / 2)
    return height / 2 - focal * local[1] / -local[2], width / 2 + focal * local[0] / -local[2]


def camera_up(model, data, camera):
    return data.cam_xmat[model.camera(camera).id].reshape(3, 3)[:, 1]


def test_arm_target_appears_where_the_camera_sees_it():
    env = make_env('arm', 'reach-red', seed=0, image_size=128, cameras=['front', 'top'])
    env.reset()
    model, data = env.model, env.data
    red = model.body_mocapid[model.body('target_red').id]
    for other in ('green', 'blue'):  # out of the way
        data.mocap_pos[model.body_mocapid[model.body(f'target_{other}').id]] = (-1.0, 0, -1)
    seen = {}
    for name, point in {'+y': (0.4, 0.3, 0.1), '-y': (0.4, -0.3, 0.1),
                        'high': (0.3, 0.0, 0.45), 'low': (0.3, 0.0, 0.05)}.items():
        data.mocap_pos[red] = point
        mujoco.mj_forward(model, data)
        images = env.render()
        for camera in ('front', 'top'):
            assert camera_up(model, data, camera)[2] >= 0  # no camera looks upside down
            found = colour_centroid(images[camera], 'red')
            assert found is not None, (name, camera)
            expected = project(model, data, camera, point, 128, 128)
            assert np.hypot(*np.subtract(found, expected)) < 4, (name, camera, found, expected)
            seen[name, camera] = found
    env.close()
    # The front camera stands at -y looking towards +y and -x: +y is to the right; higher
    # targets are nearer the top. From above, +x (away from the base) is up, +y left.
    assert seen['-y', 'front'][1] + 20 < seen['+y', 'front'][1]
    assert seen['high', 'front'][0] + 20 < seen['low', 'front'][0]
    assert seen['+y', 'top'][1] + 20 < seen['-y', 'top'][1]
    assert seen['+y', 'top'][0] + 5 < seen['low', 'top'][0]


@pytest.mark.parametrize('camera,colours', [
    ('front', 'blue green yellow'), ('corner', 'blue green yellow'),
    ('corner2', 'blue green yellow'), ('corner3', 'blue green yellow'),
    ('corner4', 'blue green yellow'), ('topview', 'yellow'),  # the arm hides the blocks
    ('wrist', 'blue'),  # a finger hides the green block at this layout
])
def test_metaworld_objects_appear_where_the_camera_sees_them(camera, colours):
    # Green and blue blocks and the yellow goal marker (the Sawyer itself is red).
    env = make_env('metaworld', 'pick-place-blue', seed=5, image_size=160, cameras=[camera])
    obs = env.reset()
    model, data = env.mw.model, env.mw.data
    if camera not in ('topview', 'wrist'):  # both look down; their image up is the table's +y
        assert camera_up(model, data, camera)[2] > 0.2
    points = {'blue': data.body('obj').xpos + (0, 0, 0.015),  # the top face shows most
              'green': data.body('d2_obj').xpos + (0, 0, 0.015),
              'yellow': data.site('goal').xpos}
    for colour in colours.split():
        point = points[colour]
        found = colour_centroid(obs.images[camera], colour)
        assert found is not None, (camera, colour)
        expected = project(model, data, camera, point, 160, 160)
        assert np.hypot(*np.subtract(found, expected)) < 5, (camera, colour, found, expected)
    env.close()


def test_image_size_parsing():
    assert parse_image_size(128) == (128, 128)
    assert parse_image_size('96x128') == (96, 128)
    assert parse_image_size((64, 80)) == (64, 80)
    with pytest.raises(ValueError, match='expected N or HxW'):
        parse_image_size('big')


def test_renders_headless_even_when_mujoco_was_imported_first():
    # MUJOCO_GL unset and mujoco imported before the package: MuJoCo falls back to GLFW,
    # which needs a display; the renderer must switch to a headless back-end by itself.
    env = {k: v for k, v in os.environ.items()
           if k not in ('MUJOCO_GL', 'PYOPENGL_PLATFORM', 'DISPLAY')}
    code = ('import mujoco\n'
            'from hybrid_vla_ros.sim import make_env\n'
            "e = make_env('arm', 'reach-red', image_size=32)\n"
            "print(e.reset().images['front'].shape)\n"
            'e.close()\n')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == '(32, 32, 3)'


def test_wrist_camera_follows_the_hand():
    """The `wrist` camera moves with the hand: the target block stays where projection puts
    it while the expert carries the hand towards it, and grows in the image."""
    env = make_env('metaworld', 'pick-place-blue', seed=5, image_size=160, cameras=['wrist'])
    obs = env.reset()
    model, data = env.mw.model, env.mw.data
    cam = model.camera('wrist').id
    start = data.cam_xpos[cam].copy()
    sizes = []
    for step in range(40):
        if step in (0, 20):
            point = data.body('obj').xpos + (0, 0, 0.015)
            found = colour_centroid(obs.images['wrist'], 'blue')
            assert found is not None, step
            expected = project(model, data, 'wrist', point, 160, 160)
            assert np.hypot(*np.subtract(found, expected)) < 6, (step, found, expected)
            sizes.append(colour_mask(obs.images['wrist'], 'blue').sum())
        obs, _, _ = env.step(env.expert_action(obs))
    assert np.linalg.norm(data.cam_xpos[cam] - start) > 0.05  # the hand (and camera) moved
    assert sizes[1] > 1.5 * sizes[0]  # nearer the block
    env.close()


def test_images_rendered_on_read_are_those_of_the_observed_state():
    """`render_on_read` (what eval-sim uses) renders the frame of the state the observation
    was taken in, the same pixels as rendering at once, and refuses to render a frame for
    an observation the env has moved past."""
    from hybrid_vla_ros.sim.env import RenderedOnRead, StaleObservation
    eager = make_env('metaworld', 'drawer-open', seed=3, image_size=64)
    lazy = make_env('metaworld', 'drawer-open', seed=3, image_size=64)
    lazy.render_on_read = True
    try:
        obs_e, obs_l = eager.reset(), lazy.reset()
        assert isinstance(obs_l.images, RenderedOnRead)
        assert list(obs_l.images) == list(obs_e.images) == ['front']
        for _ in range(6):
            action = eager.expert_action(obs_e)
            assert np.array_equal(action, lazy.expert_action(obs_l))
            obs_e, _, _ = eager.step(action)
            obs_l, _, _ = lazy.step(action)
        assert np.array_equal(obs_l.images['front'], obs_e.images['front'])
        assert obs_l.images['front'].shape == (64, 64, 3)
        unread = lazy.observe()
        lazy.step(lazy.expert_action(unread))
        with pytest.raises(StaleObservation, match='after the env stepped'):
            unread.images['front']
        with pytest.raises(KeyError):
            lazy.observe().images['no-such-camera']
    finally:
        eager.close()
        lazy.close()
