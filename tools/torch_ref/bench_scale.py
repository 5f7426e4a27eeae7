"""Torch side of `gradot bench --only scale` (src/cli/bench-scale.ts): for a hub-shaped model folder, the
seconds (wall and CPU) of one forward + backward (float32, all weights requiring grad, mean next-token loss) on a B x T
batch of random ids, and of torch.linalg.svd (float64) on a random matrix of the model's largest block
shape, single-threaded like our engine (and with torch's default thread count with "allThreads": true). Prints one JSON line.

    /usr/bin/python3 tools/torch_ref/bench_scale.py '{"dir": "/tmp/gpt2", "batch": 4, "seq": 128,
        "svd": [3072, 768], "reps": 2}'
"""

import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref  # noqa: E402


def timed(fn, reps, label=''):
    t0 = time.perf_counter()
    fn()  # warm-up
    print(f'bench_scale: {label} warm-up {time.perf_counter() - t0:.2f} s', file=sys.stderr, flush=True)
    best, best_cpu = float('inf'), float('inf')
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        fn()
        best, best_cpu = min(best, time.perf_counter() - t), min(best_cpu, time.process_time() - c)
    return best, best_cpu


def main():
    cfg = json.loads(sys.argv[1])
    t0 = time.perf_counter()
    config, w = ref.load_hf_folder(cfg['dir'])
    print(f'bench_scale: loaded in {time.perf_counter() - t0:.1f} s', file=sys.stderr, flush=True)
    # Hub spellings the reference forward does not use directly.
    w = {('model.' + k if k.startswith('decoder.') else k): v.float() for k, v in w.items()}
    if 'lm_head.weight' not in w:
        emb = 'wte.weight' if 'wte.weight' in w else next(k for k in w if k.endswith('embed_tokens.weight'))
        w['lm_head.weight'] = w[emb]
    for v in w.values():
        v.requires_grad_(True)
    B, T = cfg.get('batch', 4), cfg.get('seq', 128)
    V = config['vocab_size']
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, V, (B, T), generator=g)
    reps = cfg.get('reps', 2)
    out = {}

    def fwd_bwd():
        for v in w.values():
            v.grad = None
        logits = ref.forward(config, w, ids, dtype=torch.float32)
        loss = ref.hf_causal_lm_loss(logits, ids)
        loss.backward()

    def fwd():
        with torch.no_grad():
            ref.forward(config, w, ids, dtype=torch.float32)

    m, n = cfg.get('svd', [768, 768])
    a = torch.randn(m, n, generator=g, dtype=torch.float64)
    default_threads = torch.get_num_threads()
    for threads in (1, default_threads) if cfg.get('allThreads') else (1,):
        torch.set_num_threads(threads)
        key = f'threads{threads}'
        r = {}
        for name, fn in (('forward', fwd), ('forwardBackward', fwd_bwd), ('svd', lambda: torch.linalg.svd(a, full_matrices=False))):
            r[name + 'S'], r[name + 'CpuS'] = timed(fn, reps, f'{name}, {threads} thread(s)')
        out[key] = r
        if threads == default_threads:
            break
    out['defaultThreads'] = default_threads
    out['maxRssMB'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    out['torch'] = torch.__version__
    print(json.dumps(out))


if __name__ == '__main__':
    main()
