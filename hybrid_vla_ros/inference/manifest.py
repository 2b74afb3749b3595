"""The export manifest (``onnx/manifest.json``): which graphs exist, their input and output
names, shapes and dtypes, opset, file checksums, and the hashes of the configuration and
weights they were exported from. Read without torch."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..schema import ConfigError

MANIFEST_FILE = 'manifest.json'
ONNX_DIR = 'onnx'
PARTS = ('vision', 'language', 'policy_core')
MANIFEST_FORMAT = 1


class ManifestError(ConfigError):
    """Exported graphs are missing, corrupt, or do not belong to the checkpoint."""


def sha256_file(path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def export_hint(checkpoint_dir) -> str:
    """The command that (re)creates a checkpoint's exported graphs."""
    return f'hybrid-vla export --checkpoint {checkpoint_dir}'


def read_manifest(checkpoint_dir, config_hash: str, weights_sha256: str | None = None,
                  verify_files: bool = True) -> dict:
    """Load and check ``CHECKPOINT/onnx/manifest.json``.

    Refuses (ManifestError) a missing manifest or graph file (naming the path and the
    command that creates it), a manifest exported from another configuration or other
    weights (naming both hashes), and a graph whose checksum no longer matches.
    """
    onnx_dir = Path(checkpoint_dir) / ONNX_DIR
    path = onnx_dir / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(f'{path} does not exist: this checkpoint has not been exported; '
                            f'run `{export_hint(checkpoint_dir)}`')
    try:
        manifest = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f'{path} is not readable JSON ({exc}); re-run '
                            f'`{export_hint(checkpoint_dir)}`') from None
    if manifest.get('format') != MANIFEST_FORMAT:
        raise ManifestError(f'{path}: manifest format {manifest.get("format")!r} is not '
                            f'{MANIFEST_FORMAT}; re-run `{export_hint(checkpoint_dir)}`')
    if manifest.get('config_hash') != config_hash:
        raise ManifestError(
            f'{onnx_dir} was exported from another configuration (manifest config hash '
            f'{manifest.get("config_hash")}, checkpoint config.yaml hash {config_hash}); '
            f're-run `{export_hint(checkpoint_dir)}`')
    if weights_sha256 is not None and manifest.get('weights_sha256') != weights_sha256:
        raise ManifestError(
            f'{onnx_dir} was exported from other weights (manifest weights sha256 '
            f'{str(manifest.get("weights_sha256"))[:16]}, model.safetensors '
            f'{weights_sha256[:16]}); re-run `{export_hint(checkpoint_dir)}`')
    if verify_files:
        for part, entry in manifest['parts'].items():
            file = onnx_dir / entry['file']
            if not file.is_file():
                raise ManifestError(f'{file} is missing (part {part}); re-run '
                                    f'`{export_hint(checkpoint_dir)}`')
            if sha256_file(file) != entry['sha256']:
                raise ManifestError(f'{file} does not match its checksum in {path} (changed '
                                    f'or truncated); re-run `{export_hint(checkpoint_dir)}`')
    return manifest


def model_fingerprint(checkpoint, backend) -> str:
    """``<config hash>:<weights sha256[:16]>`` of the weights `backend` runs from
    `checkpoint`: the export manifest's checksum, else the checksum of
    ``model.safetensors`` ('' after the colon when neither exists). The nodes stamp it on
    their features; a resumed evaluation compares it, so two checkpoints never mix."""
    manifest = getattr(backend, 'manifest', None)
    sha = ''
    if isinstance(manifest, dict) and manifest.get('weights_sha256'):
        sha = str(manifest['weights_sha256'])
    else:
        weights = Path(checkpoint) / 'model.safetensors'
        if weights.is_file():
            sha = sha256_file(weights)
    return f'{backend.spec.config_hash}:{sha[:16]}'
