"""Regenerates src/model/__fixtures__/<family>/ (small random HF checkpoints + torch logits and loss).

    /usr/bin/python3 tools/torch_ref/make_fixtures.py            # from the repo root

Each fixture folder holds config.json and model.safetensors (HF names, F32), plus fixture.json:
  ids     [B][T] input ids
  labels  [B][T] HF-style labels (unshifted, some -100); HF's loss shifts them internally
  targets [B][T] the same labels shifted left (targets[b][t] = labels[b][t+1], last = -100): what a
          decoder's `loss(ids, targets)` takes, position t predicting targets[t]
  logits  [B*T][V] float64 reference computed from the float32 weights, rounded to 7 significant digits
  loss    mean cross-entropy over non-ignored targets (== HF's shifted loss)
Weights (norm weights and biases included) are random so that every parameter matters in the check.
CI never runs this: the outputs are committed.
"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
OUT = os.path.join(ROOT, 'src', 'model', '__fixtures__')

V, D, H, L, FF, P = 64, 32, 4, 2, 64, 32
B, T = 2, 7


def rnd(g, *shape, std=0.2, mean=0.0):
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * std + mean).to(torch.float32)


def gpt2(g):
    config = {
        'architectures': ['GPT2LMHeadModel'], 'model_type': 'gpt2', 'vocab_size': V, 'n_positions': P,
        'n_embd': D, 'n_layer': L, 'n_head': H, 'n_inner': FF, 'activation_function': 'gelu_new',
        'layer_norm_epsilon': 1e-5, 'tie_word_embeddings': True, 'bos_token_id': 0, 'eos_token_id': 0,
    }
    w = {'transformer.wte.weight': rnd(g, V, D, std=0.5), 'transformer.wpe.weight': rnd(g, P, D, std=0.3)}
    for i in range(L):
        p = f'transformer.h.{i}.'
        w[p + 'ln_1.weight'] = rnd(g, D, std=0.1, mean=1.0)
        w[p + 'ln_1.bias'] = rnd(g, D, std=0.1)
        w[p + 'attn.c_attn.weight'] = rnd(g, D, 3 * D)  # Conv1D: [in, out]
        w[p + 'attn.c_attn.bias'] = rnd(g, 3 * D, std=0.1)
        w[p + 'attn.c_proj.weight'] = rnd(g, D, D)
        w[p + 'attn.c_proj.bias'] = rnd(g, D, std=0.1)
        w[p + 'ln_2.weight'] = rnd(g, D, std=0.1, mean=1.0)
        w[p + 'ln_2.bias'] = rnd(g, D, std=0.1)
        w[p + 'mlp.c_fc.weight'] = rnd(g, D, FF)
        w[p + 'mlp.c_fc.bias'] = rnd(g, FF, std=0.1)
        w[p + 'mlp.c_proj.weight'] = rnd(g, FF, D)
        w[p + 'mlp.c_proj.bias'] = rnd(g, D, std=0.1)
    w['transformer.ln_f.weight'] = rnd(g, D, std=0.1, mean=1.0)
    w['transformer.ln_f.bias'] = rnd(g, D, std=0.1)
    return config, w


def opt(g):
    config = {
        'architectures': ['OPTForCausalLM'], 'model_type': 'opt', 'vocab_size': V,
        'max_position_embeddings': P, 'hidden_size': D, 'word_embed_proj_dim': D, 'num_hidden_layers': L,
        'num_attention_heads': H, 'ffn_dim': FF, 'activation_function': 'relu', 'do_layer_norm_before': True,
        'enable_bias': True, 'layer_norm_elementwise_affine': True, 'tie_word_embeddings': True,
        'pad_token_id': 1, 'bos_token_id': 2, 'eos_token_id': 2,
    }
    pre = 'model.decoder.'
    w = {pre + 'embed_tokens.weight': rnd(g, V, D, std=0.5),
         pre + 'embed_positions.weight': rnd(g, P + 2, D, std=0.3)}
    for i in range(L):
        p = f'{pre}layers.{i}.'
        for n in ('q_proj', 'k_proj', 'v_proj', 'out_proj'):
            w[p + f'self_attn.{n}.weight'] = rnd(g, D, D)
            w[p + f'self_attn.{n}.bias'] = rnd(g, D, std=0.1)
        for n in ('self_attn_layer_norm', 'final_layer_norm'):
            w[p + n + '.weight'] = rnd(g, D, std=0.1, mean=1.0)
            w[p + n + '.bias'] = rnd(g, D, std=0.1)
        w[p + 'fc1.weight'] = rnd(g, FF, D)
        w[p + 'fc1.bias'] = rnd(g, FF, std=0.1)
        w[p + 'fc2.weight'] = rnd(g, D, FF)
        w[p + 'fc2.bias'] = rnd(g, D, std=0.1)
    w[pre + 'final_layer_norm.weight'] = rnd(g, D, std=0.1, mean=1.0)
    w[pre + 'final_layer_norm.bias'] = rnd(g, D, std=0.1)
    return config, w


def llama(g, qwen2=False):
    Hkv = 2
    hd = D // H
    config = {
        'architectures': ['Qwen2ForCausalLM' if qwen2 else 'LlamaForCausalLM'],
        'model_type': 'qwen2' if qwen2 else 'llama', 'vocab_size': V, 'hidden_size': D,
        'intermediate_size': FF, 'num_hidden_layers': L, 'num_attention_heads': H, 'num_key_value_heads': Hkv,
        'max_position_embeddings': P, 'rms_norm_eps': 1e-6, 'rope_theta': 10000.0 if not qwen2 else 1000000.0,
        'hidden_act': 'silu', 'tie_word_embeddings': qwen2, 'attention_bias': False,
        'bos_token_id': 1, 'eos_token_id': 2,
    }
    w = {'model.embed_tokens.weight': rnd(g, V, D, std=0.5)}
    for i in range(L):
        p = f'model.layers.{i}.'
        w[p + 'input_layernorm.weight'] = rnd(g, D, std=0.1, mean=1.0)
        w[p + 'self_attn.q_proj.weight'] = rnd(g, H * hd, D, std=0.3)
        w[p + 'self_attn.k_proj.weight'] = rnd(g, Hkv * hd, D, std=0.3)
        w[p + 'self_attn.v_proj.weight'] = rnd(g, Hkv * hd, D)
        w[p + 'self_attn.o_proj.weight'] = rnd(g, D, H * hd)
        if qwen2:
            w[p + 'self_attn.q_proj.bias'] = rnd(g, H * hd, std=0.1)
            w[p + 'self_attn.k_proj.bias'] = rnd(g, Hkv * hd, std=0.1)
            w[p + 'self_attn.v_proj.bias'] = rnd(g, Hkv * hd, std=0.1)
        w[p + 'post_attention_layernorm.weight'] = rnd(g, D, std=0.1, mean=1.0)
        w[p + 'mlp.gate_proj.weight'] = rnd(g, FF, D)
        w[p + 'mlp.up_proj.weight'] = rnd(g, FF, D)
        w[p + 'mlp.down_proj.weight'] = rnd(g, D, FF)
    w['model.norm.weight'] = rnd(g, D, std=0.1, mean=1.0)
    if not qwen2:
        w['lm_head.weight'] = rnd(g, V, D, std=0.3)
    return config, w


def sig7(x):
    return float(f'{x:.7g}')


def main():
    families = {'gpt2': gpt2, 'opt': opt, 'llama': llama, 'qwen2': lambda g: llama(g, qwen2=True)}
    for seed, (name, make) in enumerate(families.items()):
        g = torch.Generator().manual_seed(1234 + seed)
        config, w = make(g)
        folder = os.path.join(OUT, name)
        ref.save_hf_folder(folder, config, w)
        # Reload from disk so the reference sees exactly the bytes the TS loader will read.
        config, w = ref.load_hf_folder(folder)
        ids = torch.randint(0, V, (B, T), generator=g)
        labels = ids.clone()
        labels[0, 2] = -100
        labels[1, 4] = -100
        labels[1, 5] = -100
        targets = torch.full_like(labels, -100)
        targets[:, :-1] = labels[:, 1:]
        logits = ref.forward(config, w, ids, torch.float64)
        loss = ref.hf_causal_lm_loss(logits, labels)
        # cross-check: the aligned-target form gives the same mean
        loss2 = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-100)
        assert abs(loss.item() - loss2.item()) < 1e-12
        fixture = {
            'family': name, 'B': B, 'T': T, 'ids': ids.tolist(), 'labels': labels.tolist(),
            'targets': targets.tolist(),
            'logits': [[sig7(v) for v in row] for row in logits.reshape(B * T, V).tolist()],
            'loss': loss.item(),
            'generator': 'tools/torch_ref/make_fixtures.py (torch %s, float64 reference)' % torch.__version__,
        }
        with open(os.path.join(folder, 'fixture.json'), 'w') as f:
            json.dump(fixture, f, separators=(',', ':'))
            f.write('\n')
        print(f'{name}: loss {loss.item():.6f} -> {folder}')


if __name__ == '__main__':
    main()
