#!/usr/bin/env python3
"""PyTorch's side of bench/threads.ts: Hugging Face transformers, float32 on the CPU, the fixture model,
the same prompt ids (bench/data/prompt-ids.json), the same protocol: prefill ids[0 .. n-1) with the
KV cache, then greedy decode steps from ids[n-1]. Prints prefill tok/s and decode ms/token per thread
count and context, and checks the first greedy tokens against kvkit's (--kvkit, bench/threads.ts --json).

  python3 tools/pytorch-speed.py [--lengths 1024,4096,8000] [--threads 1,16] [--decode 16]
                                 [--kvkit kvkit.json] [--json out.json]
Exit status 1 when a first token differs from kvkit's at the same context.
"""
import argparse
import json
import sys
import time

import torch
from transformers import AutoModelForCausalLM

FIRST_TOKENS = 8


def run(model, ids, n, steps):
    with torch.inference_mode():
        t0 = time.perf_counter()
        out = model(torch.tensor([ids[: n - 1]]), use_cache=True)
        t1 = time.perf_counter()
        past = out.past_key_values
        nxt = ids[n - 1]
        tokens = []
        for s in range(steps):
            out = model(torch.tensor([[nxt]]), past_key_values=past, use_cache=True,
                        position_ids=torch.tensor([[n - 1 + s]]))
            past = out.past_key_values
            nxt = int(out.logits[0, -1].argmax())
            tokens.append(nxt)
        t2 = time.perf_counter()
    return (t1 - t0) * 1000, (t2 - t1) * 1000 / steps, tokens


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', default='models/fixture-14m')
    ap.add_argument('--ids', default='bench/data/prompt-ids.json')
    ap.add_argument('--lengths', default='1024,4096,8000')
    ap.add_argument('--threads', default='1,16')
    ap.add_argument('--decode', type=int, default=16)
    ap.add_argument('--rounds', type=int, default=2)
    ap.add_argument('--kvkit', help="bench/threads.ts --json output: first tokens to compare")
    ap.add_argument('--json')
    a = ap.parse_args()
    ids = json.load(open(a.ids))['ids']
    # the checkpoint is float16: widened to float32 as kvkit widens it in its arena
    model = AutoModelForCausalLM.from_pretrained(a.model).to(torch.float32).eval()
    rows = []
    for t in [int(x) for x in a.threads.split(',')]:
        torch.set_num_threads(t)
        for n in [int(x) for x in a.lengths.split(',')]:
            run(model, ids, min(n, 256), 2)  # warm-up
            best = None
            for _ in range(a.rounds):
                p, d, toks = run(model, ids, n, a.decode)
                best = (p, d, toks) if best is None else (min(best[0], p), min(best[1], d), toks)
            r = {'engine': 'pytorch', 'threads': t, 'context': n, 'prefillTokS': (n - 1) / best[0] * 1000,
                 'decodeMsTok': best[1], 'firstTokens': best[2][:FIRST_TOKENS],
                 'kernels': f'torch {torch.__version__} float32 {model.config._attn_implementation}'}
            rows.append(r)
            print(f"pytorch   {t:2d} thr  {n:5d}  prefill {r['prefillTokS']:6.0f} tok/s  decode {r['decodeMsTok']:6.2f} ms/tok  first {','.join(map(str, r['firstTokens']))}", flush=True)
            if a.json:
                json.dump(rows, open(a.json, 'w'), indent=1)
    ok = True
    if a.kvkit:
        theirs = json.load(open(a.kvkit))
        for r in rows:
            for k in (x for x in theirs if x['context'] == r['context'] and x['engine'] == 'kvkit'):
                same = 0
                while same < min(len(k['firstTokens']), len(r['firstTokens'])) and k['firstTokens'][same] == r['firstTokens'][same]:
                    same += 1
                status = 'match' if same > 0 else 'DIFFER'
                ok &= same > 0
                print(f"context {r['context']}: pytorch {r['threads']} thr vs kvkit {k['threads']} thr: first {same} greedy tokens equal ({status})")
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
