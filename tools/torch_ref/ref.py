"""Plain-PyTorch reference decoders with Hugging Face semantics (no `transformers` needed).

Debian ships torch (python3-torch) but not transformers, so this file re-implements the forward pass of
GPT2LMHeadModel, OPTForCausalLM and LlamaForCausalLM / Qwen2ForCausalLM from the HF modeling code, reading
and writing HF folders (config.json + model.safetensors, HF tensor names). It is the oracle the TypeScript
decoder is checked against (src/model/fixtures.test.ts) and the torch side of the training benchmark.

Semantics reproduced on purpose (each is a place where a "looks right" decoder silently differs):
- GPT-2: Conv1D weights stored [in, out]; fused c_attn split into q|k|v along the output dim; gelu_new
  (tanh approximation); LayerNorm eps = layer_norm_epsilon; learned positions from 0; tied lm_head.
- OPT (do_layer_norm_before=True): learned positions with offset 2 (positions = cumsum(mask)*mask - 1 + 2,
  i.e. index t+2 for unpadded input); q scaled by head_dim^-0.5 *before* q.k; per-layer
  self_attn_layer_norm / final_layer_norm; decoder.final_layer_norm; LayerNorm eps 1e-5; ReLU.
- LLaMA/Qwen2: RMSNorm computed in fp32 then multiplied by weight; rotate_half RoPE with rope_theta;
  GQA via repeat_kv; SwiGLU MLP; optional q/k/v bias (qwen2 always, llama via attention_bias).

Run with Debian's interpreter: /usr/bin/python3 (the pyenv python3 on PATH has no torch).
"""

import json
import math
import os
import struct

import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------------------
# safetensors (minimal): 8-byte LE header length, JSON header, raw little-endian tensor bytes.

_DTYPES = {
    'F32': (torch.float32, 4),
    'F64': (torch.float64, 8),
    'F16': (torch.float16, 2),
    'BF16': (torch.bfloat16, 2),
    'I64': (torch.int64, 8),
    'I32': (torch.int32, 4),
}
_NAMES = {v[0]: k for k, v in _DTYPES.items()}


def read_safetensors(path):
    with open(path, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n].decode('utf-8'))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        dtype, size = _DTYPES[info['dtype']]
        s, e = info['data_offsets']
        buf = bytearray(raw[base + s:base + e])
        if len(buf) == 0:
            t = torch.empty(info['shape'], dtype=dtype)
        else:
            t = torch.frombuffer(buf, dtype=dtype).reshape(info['shape']).clone()
        out[name] = t
    return out


def write_safetensors(path, tensors, metadata=None):
    header = {}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        b = t.numpy().astype(t.numpy().dtype.newbyteorder('<'), copy=False).tobytes() \
            if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().astype('<i2').tobytes()
        header[name] = {'dtype': _NAMES[t.dtype], 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header['__metadata__'] = metadata or {'format': 'pt'}
    h = json.dumps(header, separators=(',', ':')).encode('utf-8')
    h += b' ' * ((8 - len(h) % 8) % 8)  # HF pads the header so tensor data is 8-byte aligned
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_hf_folder(folder):
    with open(os.path.join(folder, 'config.json')) as f:
        config = json.load(f)
    weights = read_safetensors(os.path.join(folder, 'model.safetensors'))
    return config, weights


def save_hf_folder(folder, config, weights):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, 'config.json'), 'w') as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write('\n')
    write_safetensors(os.path.join(folder, 'model.safetensors'), weights)


# ---------------------------------------------------------------------------------------------------------
# shared pieces


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


ACT = {
    'gelu_new': gelu_new,
    'gelu_pytorch_tanh': lambda x: F.gelu(x, approximate='tanh'),
    'gelu': F.gelu,
    'relu': F.relu,
    'silu': F.silu,
}


def causal_softmax_attention(q, k, v, scale):
    """q [B,H,T,D], k/v [B,H,T,D] -> [B,H,T,D]; HF adds a large negative (finfo.min) to masked scores."""
    T = q.shape[2]
    s = torch.matmul(q, k.transpose(-1, -2)) * scale
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    s = s.masked_fill(mask, torch.finfo(s.dtype).min)
    p = torch.softmax(s, dim=-1)
    return torch.matmul(p, v)


def split_heads(x, n, d):
    B, T, _ = x.shape
    return x.view(B, T, n, d).transpose(1, 2)


def merge_heads(x):
    B, H, T, D = x.shape
    return x.transpose(1, 2).reshape(B, T, H * D)


# ---------------------------------------------------------------------------------------------------------
# GPT2LMHeadModel


def _gpt2_prefix(w):
    return 'transformer.' if 'transformer.wte.weight' in w else ''


def gpt2_forward(config, w, ids):
    p = _gpt2_prefix(w)
    d = config['n_embd']
    H = config['n_head']
    D = d // H
    eps = config.get('layer_norm_epsilon', 1e-5)
    act = ACT[config.get('activation_function', 'gelu_new')]
    B, T = ids.shape
    pos = torch.arange(T)
    h = w[p + 'wte.weight'][ids] + w[p + 'wpe.weight'][pos][None]

    def conv1d(x, name):  # HF Conv1D: y = x @ W + b with W [in, out]
        return torch.addmm(w[name + '.bias'], x.reshape(-1, x.shape[-1]), w[name + '.weight']).view(
            *x.shape[:-1], -1)

    for i in range(config['n_layer']):
        L = f'{p}h.{i}.'
        x = F.layer_norm(h, (d,), w[L + 'ln_1.weight'], w[L + 'ln_1.bias'], eps)
        qkv = conv1d(x, L + 'attn.c_attn')
        q, k, v = qkv.split(d, dim=2)
        a = causal_softmax_attention(split_heads(q, H, D), split_heads(k, H, D), split_heads(v, H, D),
                                     1.0 / math.sqrt(D))
        h = h + conv1d(merge_heads(a), L + 'attn.c_proj')
        x = F.layer_norm(h, (d,), w[L + 'ln_2.weight'], w[L + 'ln_2.bias'], eps)
        h = h + conv1d(act(conv1d(x, L + 'mlp.c_fc')), L + 'mlp.c_proj')
    h = F.layer_norm(h, (d,), w[p + 'ln_f.weight'], w[p + 'ln_f.bias'], eps)
    head = w.get('lm_head.weight', w[p + 'wte.weight'])
    return h @ head.t()


# ---------------------------------------------------------------------------------------------------------
# OPTForCausalLM (do_layer_norm_before=True, word_embed_proj_dim == hidden_size)


def opt_forward(config, w, ids):
    assert config.get('do_layer_norm_before', True), 'only pre-LN OPT is supported'
    assert config.get('word_embed_proj_dim', config['hidden_size']) == config['hidden_size']
    d = config['hidden_size']
    H = config['num_attention_heads']
    D = d // H
    eps = 1e-5  # OPT's nn.LayerNorm default; config has no eps key
    act = ACT[config.get('activation_function', 'relu')]
    B, T = ids.shape
    P = 'model.decoder.'
    mask = torch.ones(B, T, dtype=torch.long)
    positions = (torch.cumsum(mask, dim=1) * mask).long() - 1 + 2  # OPTLearnedPositionalEmbedding offset
    h = w[P + 'embed_tokens.weight'][ids] + w[P + 'embed_positions.weight'][positions]

    def lin(x, name):
        return F.linear(x, w[name + '.weight'], w.get(name + '.bias'))

    for i in range(config['num_hidden_layers']):
        L = f'{P}layers.{i}.'
        x = F.layer_norm(h, (d,), w[L + 'self_attn_layer_norm.weight'], w[L + 'self_attn_layer_norm.bias'], eps)
        q = lin(x, L + 'self_attn.q_proj') * (D ** -0.5)  # OPT scales q before the product
        k = lin(x, L + 'self_attn.k_proj')
        v = lin(x, L + 'self_attn.v_proj')
        a = causal_softmax_attention(split_heads(q, H, D), split_heads(k, H, D), split_heads(v, H, D), 1.0)
        h = h + lin(merge_heads(a), L + 'self_attn.out_proj')
        x = F.layer_norm(h, (d,), w[L + 'final_layer_norm.weight'], w[L + 'final_layer_norm.bias'], eps)
        h = h + lin(act(lin(x, L + 'fc1')), L + 'fc2')
    h = F.layer_norm(h, (d,), w[P + 'final_layer_norm.weight'], w[P + 'final_layer_norm.bias'], eps)
    head = w.get('lm_head.weight', w[P + 'embed_tokens.weight'])
    return h @ head.t()


# ---------------------------------------------------------------------------------------------------------
# LlamaForCausalLM / Qwen2ForCausalLM


def rms_norm(x, weight, eps):
    dt = x.dtype
    xf = x.to(torch.float32) if dt in (torch.float16, torch.bfloat16) else x  # HF: fp32 (f64 stays f64)
    var = xf.pow(2).mean(-1, keepdim=True)
    xf = xf * torch.rsqrt(var + eps)
    return weight * xf.to(dt)


def rope_cos_sin(T, D, theta, dtype):
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.int64).to(torch.float64) / D))
    t = torch.arange(T, dtype=torch.float64)
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(x, n_rep):
    B, Hkv, T, D = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(B, Hkv, n_rep, T, D).reshape(B, Hkv * n_rep, T, D)


def llama_forward(config, w, ids):
    d = config['hidden_size']
    H = config['num_attention_heads']
    Hkv = config.get('num_key_value_heads', H)
    D = config.get('head_dim') or d // H
    eps = config.get('rms_norm_eps', 1e-6)
    theta = config.get('rope_theta', 10000.0)
    act = ACT[config.get('hidden_act', 'silu')]
    B, T = ids.shape
    h = w['model.embed_tokens.weight'][ids]
    cos, sin = rope_cos_sin(T, D, theta, h.dtype)
    cos, sin = cos[None, None], sin[None, None]

    def lin(x, name):
        return F.linear(x, w[name + '.weight'], w.get(name + '.bias'))

    for i in range(config['num_hidden_layers']):
        L = f'model.layers.{i}.'
        x = rms_norm(h, w[L + 'input_layernorm.weight'], eps)
        q = split_heads(lin(x, L + 'self_attn.q_proj'), H, D)
        k = split_heads(lin(x, L + 'self_attn.k_proj'), Hkv, D)
        v = split_heads(lin(x, L + 'self_attn.v_proj'), Hkv, D)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = repeat_kv(k, H // Hkv)
        v = repeat_kv(v, H // Hkv)
        a = causal_softmax_attention(q, k, v, 1.0 / math.sqrt(D))
        h = h + lin(merge_heads(a), L + 'self_attn.o_proj')
        x = rms_norm(h, w[L + 'post_attention_layernorm.weight'], eps)
        h = h + lin(act(lin(x, L + 'mlp.gate_proj')) * lin(x, L + 'mlp.up_proj'), L + 'mlp.down_proj')
    h = rms_norm(h, w['model.norm.weight'], eps)
    head = w.get('lm_head.weight', w['model.embed_tokens.weight'])
    return h @ head.t()


# ---------------------------------------------------------------------------------------------------------


def forward(config, weights, ids, dtype=torch.float64):
    """Logits [B, T, V] for int64 ids [B, T]; weights are cast to `dtype` first."""
    w = {k: v.to(dtype) for k, v in weights.items()}
    mt = config['model_type']
    if mt == 'gpt2':
        return gpt2_forward(config, w, ids)
    if mt == 'opt':
        return opt_forward(config, w, ids)
    if mt in ('llama', 'qwen2', 'mistral'):
        return llama_forward(config, w, ids)
    raise ValueError(f'unsupported model_type {mt!r}')


def hf_causal_lm_loss(logits, labels):
    """HF's loss: shift so position t predicts labels[t+1]; mean over labels != -100."""
    V = logits.shape[-1]
    shift_logits = logits[:, :-1, :].reshape(-1, V)
    shift_labels = labels[:, 1:].reshape(-1)
    return F.cross_entropy(shift_logits, shift_labels, ignore_index=-100)
