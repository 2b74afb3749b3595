"""The packaged MiniLM loads offline and gives sensible sentence embeddings; tokenization
with `tokenizers` matches transformers."""

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

from hybrid_vla_ros.model import build_policy, parse_model_config
from hybrid_vla_ros.model.hf import resolve_model_dir

from model_configs import tiny_mapping


def sentence_embeddings(policy, texts):
    ids, mask = policy.tokenize(texts)
    with torch.no_grad():
        tokens = policy.encode_language(ids, mask)
    w = mask[..., None].float()
    return F.normalize((tokens * w).sum(1) / w.sum(1), dim=-1)


def test_minilm_offline_identical_and_paraphrase_similarity():
    policy = build_policy(parse_model_config(tiny_mapping(language='hf_text'))).eval()
    assert policy.language.out_dim == 384
    texts = ['open the drawer', 'open the drawer', 'pull the drawer open',
             'close the window', 'pick up the blue block']
    e = sentence_embeddings(policy, texts)
    assert torch.equal(e[0], e[1])
    para = float(e[0] @ e[2])
    for other in (3, 4):
        assert para > float(e[0] @ e[other]) + 0.05, (para, float(e[0] @ e[other]))
    e2 = sentence_embeddings(policy, ['slide the window shut', 'grab the blue cube'])
    assert float(e[3] @ e2[0]) > float(e[4] @ e2[0])
    assert float(e[4] @ e2[1]) > float(e[3] @ e2[1])


def test_tokenizers_ids_match_transformers():
    policy = build_policy(parse_model_config(tiny_mapping(language='hf_text')))
    hf = AutoTokenizer.from_pretrained(str(resolve_model_dir('minilm', 'test')))
    texts = ['open the drawer', 'Öffne die Schublade — bitte!', '把红色方块放到盘子上',
             'pick ' * 40 + 'the red block', '', 'close   the\twindow\n']
    ids, mask = policy.tokenizer(texts)
    ref = hf(texts, padding='max_length', truncation=True, max_length=12, return_tensors='np')
    assert (ids == ref['input_ids']).all()
    assert (mask == ref['attention_mask']).all()
    assert ids.shape == (len(texts), 12) and ids.dtype.name == 'int64'


def test_mean_pooling_gives_every_position_the_sentence_embedding():
    """``language.pool: mean``: each valid position carries the mean of the token states the
    unpooled encoder gives (padding excluded), so the fusion sees the sentence embedding."""
    tokens_cfg = tiny_mapping(language='hf_text')
    pooled_cfg = tiny_mapping(language='hf_text')
    pooled_cfg['language']['pool'] = 'mean'
    plain = build_policy(parse_model_config(tokens_cfg)).eval()
    pooled = build_policy(parse_model_config(pooled_cfg)).eval()
    texts = ['open the drawer', 'pick up the red block and place it at the goal']
    ids, mask = plain.tokenize(texts)
    with torch.no_grad():
        states = plain.encode_language(ids, mask)
        out = pooled.encode_language(ids, mask)
    assert out.shape == states.shape
    for i in range(len(texts)):
        n = int(mask[i].sum())
        expected = states[i, :n].mean(0)
        torch.testing.assert_close(out[i, :n], expected.expand(n, -1), rtol=1e-5, atol=1e-5)
    assert torch.allclose(F.normalize(out[:, 0], dim=-1), sentence_embeddings(plain, texts),
                          atol=1e-5)
    bad = tiny_mapping(language='hf_text')
    bad['language']['pool'] = 'max'
    with pytest.raises(ValueError, match='language.pool'):
        parse_model_config(bad)
