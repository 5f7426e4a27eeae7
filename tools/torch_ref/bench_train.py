"""Torch side of `benchTrainStep` (src/model/bench-train.ts): tokens/s of forward + backward + AdamW for a
random LLaMA-family model, float32 on CPU, torch's default thread count. Prints one JSON line.

    /usr/bin/python3 tools/torch_ref/bench_train.py '{"layers":6,"hidden":256,"heads":4,"kvHeads":4,
        "intermediate":688,"vocab":512,"batch":4,"seq":128,"steps":5,"warmup":1}'

It uses the same forward as the fixtures (ref.llama_forward) so both sides run the same architecture.
"""

import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref  # noqa: E402


def main():
    cfg = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    L = cfg.get('layers', 6)
    d = cfg.get('hidden', 256)
    H = cfg.get('heads', 4)
    Hkv = cfg.get('kvHeads', H)
    ff = cfg.get('intermediate', 688)
    V = cfg.get('vocab', 512)
    B = cfg.get('batch', 4)
    T = cfg.get('seq', 128)
    steps = cfg.get('steps', 5)
    warmup = cfg.get('warmup', 1)
    hd = d // H
    if cfg.get('threads'):
        torch.set_num_threads(int(cfg['threads']))
    torch.manual_seed(0)
    config = {'model_type': 'llama', 'hidden_size': d, 'num_attention_heads': H, 'num_key_value_heads': Hkv,
              'intermediate_size': ff, 'num_hidden_layers': L, 'vocab_size': V, 'rms_norm_eps': 1e-6,
              'rope_theta': 10000.0, 'hidden_act': 'silu'}
    shapes = {'model.embed_tokens.weight': (V, d), 'model.norm.weight': (d,), 'lm_head.weight': (V, d)}
    for i in range(L):
        p = f'model.layers.{i}.'
        shapes.update({
            p + 'input_layernorm.weight': (d,), p + 'post_attention_layernorm.weight': (d,),
            p + 'self_attn.q_proj.weight': (H * hd, d), p + 'self_attn.k_proj.weight': (Hkv * hd, d),
            p + 'self_attn.v_proj.weight': (Hkv * hd, d), p + 'self_attn.o_proj.weight': (d, H * hd),
            p + 'mlp.gate_proj.weight': (ff, d), p + 'mlp.up_proj.weight': (ff, d),
            p + 'mlp.down_proj.weight': (d, ff),
        })
    w = {}
    for k, s in shapes.items():
        t = torch.ones(s) if len(s) == 1 else torch.randn(s) * 0.02
        w[k] = torch.nn.Parameter(t)
    opt = torch.optim.AdamW(list(w.values()), lr=1e-3, weight_decay=0.0)
    ids = torch.randint(0, V, (B, T))
    targets = torch.randint(0, V, (B, T))

    def step():
        opt.zero_grad(set_to_none=True)
        logits = ref.llama_forward(config, w, ids)
        loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    c0 = time.process_time()
    loss = 0.0
    for _ in range(steps):
        loss = step()
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    n_params = sum(p.numel() for p in w.values())
    print(json.dumps({
        'torch': torch.__version__, 'threads': torch.get_num_threads(), 'params': n_params,
        'tokensPerStep': B * T, 'steps': steps, 'secondsPerStep': dt / steps,
        'tokensPerSecond': B * T * steps / dt, 'loss': loss,
        # CPU seconds of this process (all its threads): robust to other processes sharing the cores
        'cpuSecondsPerStep': cpu / steps,
    }))


if __name__ == '__main__':
    main()
