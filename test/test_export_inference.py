"""Export to ONNX and the inference backends: parity, torch-free runtime, bad input."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hybrid_vla_ros.inference import (BackendUnavailable, InputError, ManifestError,
                                      load_backend)
from hybrid_vla_ros.model import build_policy, parse_model_config, save_checkpoint

from conftest import REPO
from model_configs import tiny_mapping

EXE = os.path.join(os.path.dirname(sys.executable), 'hybrid-vla')


def _make_checkpoint(path, **kw):
    import torch
    from hybrid_vla_ros.model.config import Stats
    torch.manual_seed(0)
    policy = build_policy(parse_model_config(tiny_mapping(cameras=2, **kw)))
    # Non-trivial statistics so un-normalization inside the core is exercised.
    policy.set_normalization(Stats(mean=[0.5, -0.2, 0.1, 0.0], std=[2.0, 0.5, 1.5, 1.0]),
                             Stats(mean=[0.1, 0.2, 0.3], std=[0.3, 0.2, 0.1]))
    save_checkpoint(policy, path)
    return path


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """A checkpoint with MiniLM language and a transformer-chunk decoder, exported by the
    real CLI (fp16 graphs too)."""
    ckpt = _make_checkpoint(tmp_path_factory.mktemp('ckpt') / 'policy', language='hf_text',
                            decoder='transformer_chunk')
    r = subprocess.run([EXE, 'export', '--checkpoint', str(ckpt), '--fp16'],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'parity' in r.stdout
    return ckpt


def _inputs(backend, batch, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(batch, *backend.spec.image_shape), dtype=np.uint8)
    texts = ['open the drawer', 'Schließe das Fenster', 'pick the red block ' * 10,
             'close the drawer now'][:batch] * (batch // 4 + 1)
    ids, mask = backend.tokenizer(texts[:batch])
    proprio = rng.standard_normal((batch, backend.spec.proprio_dim)).astype(np.float32)
    return images, ids, mask, proprio


def test_manifest_records_the_graphs(exported):
    manifest = json.loads((exported / 'onnx' / 'manifest.json').read_text())
    assert manifest['opset'] >= 17
    assert set(manifest['parts']) == {'vision', 'language', 'policy_core'}
    core = manifest['parts']['policy_core']
    assert [i['name'] for i in core['inputs']] == ['visual_tokens', 'language_tokens',
                                                   'token_mask', 'proprio']
    assert core['outputs'][0]['shape'] == ['batch', 5, 4]
    assert manifest['parts']['vision']['inputs'][0] == {
        'name': 'images', 'shape': ['batch', 2, 32, 32, 3], 'dtype': 'uint8'}
    for entry in manifest['parts'].values():
        assert len(entry['sha256']) == 64
    import onnx
    model = onnx.load(str(exported / 'onnx' / 'policy_core.onnx'))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == 'batch'


@pytest.mark.parametrize('batch', [1, 4])
def test_onnxruntime_matches_torch(exported, batch):
    ort_be = load_backend(exported, 'onnxruntime')
    torch_be = load_backend(exported, 'torch')
    images, ids, mask, proprio = _inputs(ort_be, batch, seed=batch)
    vis_o, vis_t = ort_be.encode_vision(images), torch_be.encode_vision(images)
    lang_o, lang_t = ort_be.encode_language(ids, mask), torch_be.encode_language(ids, mask)
    assert vis_o.shape == (batch, ort_be.io['vision']['outputs'][0]['shape'][1], 32)
    assert np.abs(vis_o - vis_t).max() <= 1e-4
    assert np.abs(lang_o - lang_t).max() <= 1e-4
    core_o = ort_be.core(vis_t, lang_t, mask, proprio)
    core_t = torch_be.core(vis_t, lang_t, mask, proprio)
    assert core_o.shape == (batch, 5, 4)
    assert np.abs(core_o - core_t).max() <= 1e-4
    # The whole chunk, each backend end to end on its own.
    chunk_o = ort_be.core(vis_o, lang_o, mask, proprio)
    chunk_t = torch_be.core(vis_t, lang_t, mask, proprio)
    assert np.abs(chunk_o - chunk_t).max() <= 1e-4
    assert np.abs(chunk_t).max() > 0.05  # un-normalized, not a trivially tiny output


def test_exported_tokenizer_matches_model_tokenizer(exported):
    ort_be = load_backend(exported, 'onnxruntime', parts=['language'])
    torch_be = load_backend(exported, 'torch', parts=['language'])
    texts = ['open the drawer', 'ÖFFNE die Tür ✓', '', 'x' * 500, '把红色方块放到盘子上']
    for a, b in zip(ort_be.tokenizer(texts), torch_be.tokenizer(texts), strict=True):
        assert np.array_equal(a, b)


def test_fp16_graphs_run_close_to_fp32(exported):
    full = load_backend(exported, 'onnxruntime')
    half = load_backend(exported, 'onnxruntime', fp16=True)
    images, ids, mask, proprio = _inputs(full, 2, seed=3)
    lang = full.encode_language(ids, mask)
    a = full.core(full.encode_vision(images), lang, mask, proprio)
    b = half.core(half.encode_vision(images), lang, mask, proprio)
    assert b.dtype == np.float32
    assert np.abs(a - b).max() < 0.1


def test_onnxruntime_backend_needs_no_torch(exported):
    script = textwrap.dedent(f'''
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('torch', 'transformers'):
                    raise ImportError('blocked: ' + name)
        sys.meta_path.insert(0, Block())
        import numpy as np
        from hybrid_vla_ros.inference import load_backend
        be = load_backend({str(exported)!r}, 'onnxruntime')
        images = np.zeros((1, *be.spec.image_shape), dtype=np.uint8)
        lang, mask = be.encode_instruction('open the drawer')
        chunk = be.core(be.encode_vision(images), lang, mask,
                        np.zeros((1, be.spec.proprio_dim), np.float32))
        assert chunk.shape == (1, 5, 4), chunk.shape
        try:
            import torch
        except ImportError:
            pass
        else:
            raise SystemExit('torch import was not blocked')
        print('OK', sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')))
    ''')
    r = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == 'OK []'


def test_wrong_shape_and_dtype_name_expected_and_received(exported):
    be = load_backend(exported, 'onnxruntime')
    with pytest.raises(InputError) as e:
        be.encode_vision(np.zeros((1, 32, 32, 3), np.uint8))
    assert '(B, 2, 32, 32, 3) uint8' in str(e.value) and '(1, 32, 32, 3) uint8' in str(e.value)
    with pytest.raises(InputError) as e:
        be.encode_vision(np.zeros((1, 2, 32, 32, 3), np.float32))
    assert 'received (1, 2, 32, 32, 3) float32' in str(e.value)
    images, ids, mask, proprio = _inputs(be, 1, 0)
    vis, lang = be.encode_vision(images), be.encode_language(ids, mask)
    with pytest.raises(InputError, match=r"'proprio': expected shape \(B, 3\) float32, "
                                         r"received \(1, 7\) float32"):
        be.core(vis, lang, mask, np.zeros((1, 7), np.float32))
    with pytest.raises(InputError, match='batch 2 differs'):
        be.core(vis, lang, mask, np.zeros((2, 3), np.float32))


def test_graphs_from_another_config_are_refused(exported, tmp_path):
    other = _make_checkpoint(tmp_path / 'other', language='hf_text',
                             decoder='transformer_chunk')
    cfg = (other / 'config.yaml').read_text().replace('chunk: 5', 'chunk: 6')
    (other / 'config.yaml').write_text(cfg)
    shutil.copytree(exported / 'onnx', other / 'onnx')
    with pytest.raises(ManifestError) as e:
        load_backend(other, 'onnxruntime')
    manifest = json.loads((exported / 'onnx' / 'manifest.json').read_text())
    assert manifest['config_hash'] in str(e.value)
    assert 'another configuration' in str(e.value) and 'hybrid-vla export' in str(e.value)


def test_graphs_from_other_weights_are_refused(exported, tmp_path):
    copy = tmp_path / 'copy'
    shutil.copytree(exported, copy)
    from safetensors.torch import load_file, save_file
    state = load_file(str(copy / 'model.safetensors'))
    key = next(k for k in state if k.startswith('decoder.'))
    state[key] = state[key] + 1.0
    save_file({k: v.contiguous() for k, v in state.items()}, str(copy / 'model.safetensors'))
    with pytest.raises(ManifestError, match='other weights'):
        load_backend(copy, 'onnxruntime')


def test_missing_files_name_path_and_command(exported, tmp_path):
    with pytest.raises(Exception, match='config.yaml is missing'):
        load_backend(tmp_path, 'onnxruntime')
    copy = tmp_path / 'copy'
    shutil.copytree(exported, copy, ignore=shutil.ignore_patterns('onnx'))
    with pytest.raises(ManifestError) as e:
        load_backend(copy, 'onnxruntime')
    assert 'manifest.json does not exist' in str(e.value)
    assert f'hybrid-vla export --checkpoint {copy}' in str(e.value)
    shutil.copytree(exported / 'onnx', copy / 'onnx')
    (copy / 'onnx' / 'vision.onnx').unlink()
    with pytest.raises(ManifestError, match=r'vision\.onnx is missing'):
        load_backend(copy, 'onnxruntime')
    shutil.copyfile(exported / 'onnx' / 'policy_core.onnx', copy / 'onnx' / 'vision.onnx')
    with pytest.raises(ManifestError, match='does not match its checksum'):
        load_backend(copy, 'onnxruntime')


def test_unavailable_providers_and_backends_fail_at_start(exported):
    with pytest.raises(BackendUnavailable, match="provider 'cuda'"):
        load_backend(exported, 'onnxruntime', providers=['cuda', 'cpu'])
    with pytest.raises(Exception, match="backend 'tvm' is unknown"):
        load_backend(exported, 'tvm')
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(BackendUnavailable, match='TensorRT Python package'):
            load_backend(exported, 'tensorrt')
    else:
        pytest.skip('tensorrt is installed: the unavailable path cannot be shown here')


def test_tensorrt_engine_parity(exported):
    pytest.importorskip('tensorrt', reason='TensorRT is not installed on this machine')
    trt_be = load_backend(exported, 'tensorrt')
    ort_be = load_backend(exported, 'onnxruntime')
    images, ids, mask, proprio = _inputs(ort_be, 1, 0)
    assert np.abs(trt_be.encode_vision(images) - ort_be.encode_vision(images)).max() < 1e-3


def test_parity_failure_leaves_nothing_behind(tmp_path):
    ckpt = _make_checkpoint(tmp_path / 'p')
    r = subprocess.run([EXE, 'export', '--checkpoint', str(ckpt), '--tolerance', '0'],
                       capture_output=True, text=True, timeout=600)
    if r.returncode == 0:
        pytest.skip('every part matched bit-exactly; the failure path was not reached')
    assert r.returncode == 1 and 'parity check failed' in r.stdout
    assert not (ckpt / 'onnx').exists() and not (ckpt / 'onnx.partial').exists()


def test_bench_model_writes_results(exported, tmp_path):
    out = tmp_path / 'bench.json'
    r = subprocess.run([EXE, 'bench-model', '--checkpoint', str(exported), '--threads', '1',
                        '--iterations', '5', '--backends', 'torch', 'onnxruntime', 'tensorrt',
                        '--out', str(out)], capture_output=True, text=True, timeout=600,
                       cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(out.read_text())
    res = doc['results']
    for key in ('torch/threads=1', 'onnxruntime/threads=1'):
        for part in ('vision', 'language', 'policy_core', 'control_step'):
            assert res[key][part]['p50_ms'] > 0 and res[key][part]['n'] >= 2
    assert 'skipped' in res['tensorrt/threads=1'] or 'vision' in res['tensorrt/threads=1']
    assert doc['torch_over_onnxruntime_step_p50']['threads=1'] > 0


def test_parity_on_real_simulator_frames(exported):
    from hybrid_vla_ros.sim import make_env
    ort_be = load_backend(exported, 'onnxruntime')
    torch_be = load_backend(exported, 'torch')
    env = make_env('metaworld', 'pick-place-red', seed=5, image_size=32,
                   cameras=['front', 'corner'])
    frames, proprios = [], []
    obs = env.reset()
    for _ in range(4):
        frames.append(np.stack([obs.images['front'], obs.images['corner']]))
        proprios.append(obs.proprio[:3])
        obs, _, _ = env.step(env.expert_action(obs))
    env.close()
    images = np.stack(frames)
    assert images.shape == (4, 2, 32, 32, 3) and images.std() > 10  # real, varied pixels
    proprio = np.stack(proprios).astype(np.float32)
    lang, mask = ort_be.encode_instruction('pick up the red block and place it at the goal')
    lang, mask = np.repeat(lang, 4, 0), np.repeat(mask, 4, 0)
    for batch in (1, 4):
        vis_o = ort_be.encode_vision(images[:batch])
        vis_t = torch_be.encode_vision(images[:batch])
        assert np.abs(vis_o - vis_t).max() <= 1e-4
        chunk_o = ort_be.core(vis_o, lang[:batch], mask[:batch], proprio[:batch])
        chunk_t = torch_be.core(vis_t, lang[:batch], mask[:batch], proprio[:batch])
        assert np.abs(chunk_o - chunk_t).max() <= 1e-4


def test_checkpoint_written_before_a_new_config_key_exports_and_loads(tmp_path):
    """A config.yaml written before a release added a key (here `vision.coord_channels`,
    whose default leaves the network unchanged) still exports and loads: the manifest
    carries the hash of config.yaml as written, the one runtimes compare."""
    import yaml

    from hybrid_vla_ros.export.onnx_export import export_checkpoint
    ckpt = _make_checkpoint(tmp_path / 'old')
    doc = yaml.safe_load((ckpt / 'config.yaml').read_text())
    doc['model']['vision'].pop('coord_channels')
    (ckpt / 'config.yaml').write_text(yaml.safe_dump(doc))
    export_checkpoint(ckpt, log=lambda *a: None)
    backend = load_backend(ckpt, 'onnxruntime')
    assert backend.encode_vision(np.zeros((1, *backend.spec.image_shape), np.uint8)).ndim == 3


def test_pooled_language_exports_with_parity(tmp_path):
    """``language.pool: mean`` exports: the language graph gives the repeated sentence
    vector, as torch does, for short and padded instructions in one batch."""
    model = tiny_mapping(cameras=2, language='hf_text')
    model['language']['pool'] = 'mean'
    policy = build_policy(parse_model_config(model))
    save_checkpoint(policy, tmp_path / 'pooled')
    r = subprocess.run([EXE, 'export', '--checkpoint', str(tmp_path / 'pooled')],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    ort_be = load_backend(tmp_path / 'pooled', 'onnxruntime')
    torch_be = load_backend(tmp_path / 'pooled', 'torch')
    _, ids, mask, _ = _inputs(ort_be, 4, seed=0)
    lang_o, lang_t = ort_be.encode_language(ids, mask), torch_be.encode_language(ids, mask)
    assert np.abs(lang_o - lang_t).max() <= 1e-4
    short = int(mask[0].sum())
    assert short < mask.shape[1]
    np.testing.assert_allclose(lang_o[0, :short], np.repeat(lang_o[0, :1], short, 0),
                               atol=1e-6)
