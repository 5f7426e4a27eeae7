#!/usr/bin/env python3
"""Prints torch.optim.AdamW's parameters after a fixed sequence of steps (read from a JSON argument), so
src/engine/optim.test.ts can check our AdamW against the real thing. Run with /usr/bin/python3 (torch 1.13)."""
import json
import sys

import torch

cfg = json.loads(sys.argv[1])
p = torch.tensor(cfg["init"], dtype=torch.float64, requires_grad=True)
opt = torch.optim.AdamW([p], lr=cfg["lrs"][0], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"],
                        weight_decay=cfg["wd"])
for g, lr in zip(cfg["grads"], cfg["lrs"]):
    for group in opt.param_groups:
        group["lr"] = lr
    p.grad = torch.tensor(g, dtype=torch.float64)
    opt.step()
print(json.dumps(p.detach().tolist()))
