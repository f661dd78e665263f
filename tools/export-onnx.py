#!/usr/bin/env python3
"""Exports a Llama-family Hugging Face folder (kvkit's fixture) to ONNX with past key values, for
onnxruntime-node in bench/peers.ts.

    python3 tools/export-onnx.py models/fixture-14m OUT_DIR

Needs torch (and transformers, for the check). The graph is the decoder-with-past layout that
Optimum / transformers.js use: inputs `input_ids` [1, q] (int64), `past_key_values.{i}.key|value`
[1, kv_heads, past, head_dim] (float32); outputs `logits` [1, q, vocab] and `present.{i}.key|value`
[1, kv_heads, past + q, head_dim]. Positions are past + 0..q-1 (no padding: one sequence).

The forward pass is written out here in plain PyTorch (RMSNorm, rotate-half RoPE with float32
inverse frequencies as Transformers computes them, GQA, SwiGLU) rather than traced through
LlamaForCausalLM, whose cache and mask code take Python branches on shapes that a trace would freeze.
Before exporting, it is checked against LlamaForCausalLM's logits and golden.json, and after, the
ONNX graph against it with onnxruntime when that is installed. Writes OUT_DIR/model.onnx and
OUT_DIR/export-report.json.
"""
import json
import math
import os
import sys
import time

import torch
from torch import nn


def read_safetensors(path):
    """safetensors without the package (the header is JSON, the data little-endian arrays)"""
    import numpy as np
    raw = open(path, 'rb').read()
    n = int.from_bytes(raw[:8], 'little')
    header = json.loads(raw[8:8 + n])
    dtypes = {'F32': np.float32, 'F16': np.float16}
    out = {}
    for name, e in header.items():
        if name == '__metadata__':
            continue
        b, end = e['data_offsets']
        if e['dtype'] == 'BF16':
            bits = np.frombuffer(raw, np.uint16, (end - b) // 2, 8 + n + b).astype(np.uint32) << 16
            arr = bits.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtypes[e['dtype']], (end - b) // np.dtype(dtypes[e['dtype']]).itemsize, 8 + n + b)
        out[name] = torch.from_numpy(arr.astype(np.float32).reshape(e['shape']))
    return out


def load_weights(folder):
    try:
        from safetensors.torch import load_file
    except ImportError:
        load_file = read_safetensors
    index = os.path.join(folder, 'model.safetensors.index.json')
    files = sorted(set(json.load(open(index))['weight_map'].values())) if os.path.exists(index) else ['model.safetensors']
    w = {}
    for f in files:
        w.update(load_file(os.path.join(folder, f)))
    return {k: v.float() for k, v in w.items()}


class PlainLlama(nn.Module):
    def __init__(self, cfg, w):
        super().__init__()
        self.L = cfg['num_hidden_layers']
        self.H = cfg['hidden_size']
        self.nh = cfg['num_attention_heads']
        self.kvh = cfg.get('num_key_value_heads', self.nh)
        self.d = cfg.get('head_dim') or self.H // self.nh
        self.eps = cfg.get('rms_norm_eps', 1e-6)
        rp = cfg.get('rope_parameters') or {}
        theta = cfg.get('rope_theta') or rp.get('rope_theta') or 10000.0
        # Transformers: 1 / theta ** (arange(0, d, 2, int64).float() / d), in float32
        inv = 1.0 / (theta ** (torch.arange(0, self.d, 2, dtype=torch.int64).float() / self.d))
        self.register_buffer('inv_freq', inv.float(), persistent=False)
        P = lambda name: nn.Parameter(w[name], requires_grad=False)
        self.embed = P('model.embed_tokens.weight')
        self.norm = P('model.norm.weight')
        self.lm_head = P('lm_head.weight') if 'lm_head.weight' in w else self.embed
        self.layers = nn.ModuleList()
        for l in range(self.L):
            p = f'model.layers.{l}.'
            m = nn.Module()
            for short, name in [('ln1', 'input_layernorm'), ('ln2', 'post_attention_layernorm'), ('q', 'self_attn.q_proj'), ('k', 'self_attn.k_proj'),
                                ('v', 'self_attn.v_proj'), ('o', 'self_attn.o_proj'), ('gate', 'mlp.gate_proj'), ('up', 'mlp.up_proj'), ('down', 'mlp.down_proj')]:
                setattr(m, short, P(p + name + '.weight'))
            self.layers.append(m)

    def rms(self, x, g):
        var = x.pow(2).mean(-1, keepdim=True)
        return g * (x * torch.rsqrt(var + self.eps))

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    def forward(self, input_ids, *past):
        q_len = input_ids.shape[1]
        past_len = past[0].shape[2]
        pos = (torch.arange(q_len, dtype=torch.int64) + past_len).float()
        freqs = pos[:, None] * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        # causal over past + new: query i (at past_len + i) sees keys 0..past_len + i
        kpos = torch.arange(q_len, dtype=torch.int64) + past_len
        allpos = torch.arange(past_len + q_len, dtype=torch.int64)
        # float32 throughout (torch.where on Python scalars makes a float64 mask in older torch)
        mask = torch.zeros(q_len, past_len + q_len, dtype=torch.float32).masked_fill(allpos[None, :] > kpos[:, None], float('-inf'))[None, None]
        x = self.embed[input_ids]
        presents = []
        for l, m in enumerate(self.layers):
            h = self.rms(x, m.ln1)
            q = (h @ m.q.T).view(1, q_len, self.nh, self.d).transpose(1, 2)
            k = (h @ m.k.T).view(1, q_len, self.kvh, self.d).transpose(1, 2)
            v = (h @ m.v.T).view(1, q_len, self.kvh, self.d).transpose(1, 2)
            q = q * cos + self.rotate_half(q) * sin
            k = k * cos + self.rotate_half(k) * sin
            k = torch.cat((past[2 * l], k), dim=2)
            v = torch.cat((past[2 * l + 1], v), dim=2)
            presents += [k, v]
            g = self.nh // self.kvh
            # GQA: each KV head serves g query heads (expand + reshape traces with dynamic lengths; repeat_interleave does not)
            kk = k[:, :, None].expand(1, self.kvh, g, k.shape[2], self.d).reshape(1, self.nh, -1, self.d)
            vv = v[:, :, None].expand(1, self.kvh, g, v.shape[2], self.d).reshape(1, self.nh, -1, self.d)
            s = (q @ kk.transpose(-1, -2)) / math.sqrt(self.d) + mask
            a = torch.softmax(s, dim=-1) @ vv
            x = x + a.transpose(1, 2).reshape(1, q_len, self.nh * self.d) @ m.o.T
            h = self.rms(x, m.ln2)
            x = x + (torch.nn.functional.silu(h @ m.gate.T) * (h @ m.up.T)) @ m.down.T
        logits = self.rms(x, self.norm) @ self.lm_head.T
        return (logits, *presents)


def empty_past(model, n=0):
    return [torch.zeros(1, model.kvh, n, model.d) for _ in range(2 * model.L)]


def main():
    folder, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    report = {'torch': torch.__version__}
    cfg = json.load(open(os.path.join(folder, 'config.json')))
    model = PlainLlama(cfg, load_weights(folder)).eval()
    golden = json.load(open(os.path.join(folder, 'golden.json')))
    ids = torch.tensor([golden['input_ids']], dtype=torch.int64)
    with torch.no_grad():
        logits = model(ids, *empty_past(model))[0][0]
        report['golden_first8_max_abs_diff'] = float((logits[:, :8] - torch.tensor(golden['logits_first8_per_pos'])).abs().max())
        # the cache path: the prompt in two pieces gives the same last logits
        first = model(ids[:, :20], *empty_past(model))
        second = model(ids[:, 20:], *first[1:])[0][0]
        report['split_prefill_max_abs_diff'] = float((second - logits[20:]).abs().max())
        try:
            from transformers import AutoModelForCausalLM
            hf = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).eval()
            report['transformers_max_abs_diff'] = float((hf(ids).logits[0] - logits).abs().max())
        except Exception as e:  # the check is extra: golden.json is the reference
            report['transformers_check_error'] = repr(e)
    print(json.dumps(report), flush=True)
    if report['golden_first8_max_abs_diff'] > 1e-3 or report['split_prefill_max_abs_diff'] > 1e-3:
        json.dump(report, open(os.path.join(out, 'export-report.json'), 'w'), indent=1)
        sys.exit('the plain forward pass does not match golden.json; not exporting')

    names_in = ['input_ids'] + [f'past_key_values.{l}.{kv}' for l in range(model.L) for kv in ('key', 'value')]
    names_out = ['logits'] + [f'present.{l}.{kv}' for l in range(model.L) for kv in ('key', 'value')]
    axes = {'input_ids': {1: 'sequence_length'}, 'logits': {1: 'sequence_length'}}
    for n in names_in[1:]:
        axes[n] = {2: 'past_sequence_length'}
    for n in names_out[1:]:
        axes[n] = {2: 'total_sequence_length'}
    path = os.path.join(out, 'model.onnx')
    t0 = time.time()
    example = (ids[:, :5], *empty_past(model, 3))
    kwargs = dict(input_names=names_in, output_names=names_out, dynamic_axes=axes, opset_version=17, do_constant_folding=True)
    try:
        torch.onnx.export(model, example, path, dynamo=False, **kwargs)
    except TypeError:  # torch without the dynamo switch: the TorchScript exporter is the default
        torch.onnx.export(model, example, path, **kwargs)
    report['export_s'] = round(time.time() - t0, 1)
    report['onnx_bytes'] = os.path.getsize(path)
    try:
        import numpy as np
        import onnxruntime as ort
        sess = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
        feeds = {'input_ids': ids.numpy()}
        for n, t in zip(names_in[1:], empty_past(model)):
            feeds[n] = t.numpy()
        got = sess.run(['logits'], feeds)[0][0]
        report['onnxruntime_max_abs_diff'] = float(np.abs(got - logits.numpy()).max())
    except Exception as e:
        report['onnxruntime_check_error'] = repr(e)
    json.dump(report, open(os.path.join(out, 'export-report.json'), 'w'), indent=1)
    print(json.dumps(report), flush=True)


if __name__ == '__main__':
    main()
