"""Small model configurations for fast tests (32x32 images, narrow widths)."""

import copy
import itertools

TINY_VIT = {'model_type': 'vit', 'hidden_size': 32, 'num_hidden_layers': 1,
            'num_attention_heads': 2, 'intermediate_size': 64, 'image_size': 32,
            'patch_size': 8}

VISION = {
    'cnn': {'type': 'cnn', 'channels': [8, 16, 16], 'dim': 32},
    'hf': {'type': 'hf', 'hf_config': TINY_VIT, 'freeze': False},
    'patch': {'type': 'patch', 'patch_size': 8, 'dim': 32},
}
LANGUAGE = {
    'hf_text': {'type': 'hf_text', 'model': 'minilm', 'freeze': True},
    'learned': {'type': 'learned', 'buckets': 256, 'dim': 32, 'layers': 1, 'heads': 2},
}
FUSION = {
    'transformer': {'type': 'transformer', 'dim': 32, 'layers': 1, 'heads': 2, 'readouts': 2},
    'early': {'type': 'early', 'dim': 32, 'layers': 2, 'heads': 2, 'readouts': 2},
}
DECODER = {
    'mlp_chunk': {'type': 'mlp_chunk', 'hidden': 32, 'layers': 1},
    'transformer_chunk': {'type': 'transformer_chunk', 'layers': 1, 'heads': 2},
}
FUSION_VISION = {'transformer': ('cnn', 'hf'), 'early': ('patch',)}


def tiny_mapping(vision='cnn', language='learned', fusion='transformer',
                 decoder='mlp_chunk', cameras=1, proprio=3, action=4, chunk=5):
    """A complete model mapping of the given composition."""
    return {
        'observation': {'cameras': [{'name': f'cam{i}', 'height': 32, 'width': 32}
                                    for i in range(cameras)],
                        'proprio_dim': proprio},
        'action': {'dim': action, 'chunk': chunk},
        'instruction_max_tokens': 12,
        'vision': copy.deepcopy(VISION[vision]),
        'language': copy.deepcopy(LANGUAGE[language]),
        'fusion': copy.deepcopy(FUSION[fusion]),
        'decoder': copy.deepcopy(DECODER[decoder]),
        'loss': {'lambda_e2e': 1.0, 'lambda_modular': 0.5, 'modular_dim': 16,
                 'privileged_dim': 2},
    }


def valid_combinations():
    """Every valid (vision, language, fusion, decoder) tuple."""
    for fusion, visions in FUSION_VISION.items():
        for vision, language, decoder in itertools.product(visions, LANGUAGE, DECODER):
            yield vision, language, fusion, decoder
