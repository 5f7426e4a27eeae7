"""Minimal safetensors reader/writer and Hugging Face folder export (Debian has no safetensors).

Format: 8-byte little-endian header length, JSON header {name: {dtype, shape, data_offsets}},
then the raw little-endian tensor bytes; header padded with spaces to a multiple of 8.
"""
import json
import os
import struct

import numpy as np
import torch

from model import LlamaConfig, LlamaForCausalLM

_DT = {"F16": (np.float16, torch.float16), "F32": (np.float32, torch.float32), "BF16": (None, torch.bfloat16)}


def save_safetensors(path, tensors: dict, dtype="F16", metadata=None):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        arr = t.detach().cpu().to(_DT[dtype][1]).contiguous().numpy()
        b = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = metadata or {"format": "pt"}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


def load_safetensors(path) -> dict:
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        npdt = _DT[info["dtype"]][0]
        arr = np.frombuffer(data[a:b], dtype=np.dtype(npdt).newbyteorder("<")).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.astype(np.float32))
    return out


def export_hf(model: LlamaForCausalLM, out_dir: str):
    os.makedirs(out_dir, exist_ok=True)
    cfg = model.cfg
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg.to_hf(), f, indent=2)
    gen = {"bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id, "do_sample": True,
           "temperature": 0.8, "top_k": 40, "max_new_tokens": 64, "transformers_version": "4.44.0"}
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
    sd = {k: v for k, v in model.state_dict().items()}
    if cfg.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    save_safetensors(os.path.join(out_dir, "model.safetensors"), dict(sorted(sd.items())), "F16")


def load_hf(model_dir: str) -> LlamaForCausalLM:
    cfg = LlamaConfig.from_hf(json.load(open(os.path.join(model_dir, "config.json"))))
    m = LlamaForCausalLM(cfg)
    sd = load_safetensors(os.path.join(model_dir, "model.safetensors"))
    if cfg.tie_word_embeddings:
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
    missing, unexpected = m.load_state_dict(sd, strict=True), None
    return m.eval()
