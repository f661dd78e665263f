#!/usr/bin/env python3
"""PyTorch's side of bench/webgpu-decode.ts: Hugging Face transformers, eager attention, float32 weights
(the float16 checkpoint widened, as kvkit widens it in its arena: the same arithmetic), on CUDA (or
--device cpu), the same prompt ids (bench/webgpu-decode.ts --ids-out), the same protocol: prefill
ids[0 .. n-1) with the KV cache, then N greedy decode steps from ids[n-1], the sampled token read back
every step (as kvkit reads it back), end-of-sequence ignored. torch.cuda.synchronize() brackets every
timing; one warm-up run first; medians over --runs runs.

  python3 tools/pytorch-gpu-decode.py --ids ids.json [--kvkit out.json] [--device cuda|cpu]
                                      [--lengths 4096,8192] [--new 64] [--runs 3] [--json pytorch.json]

--kvkit: bench/webgpu-decode.ts --json output. Its full-cache greedy ids at each length are checked
against these: the first differing step is reported with PyTorch's logit margin there (top-1 minus
top-2) and the gap between PyTorch's logits of its token and of kvkit's. A difference is a float-rounding
flip when that gap is under ROUNDING_REL x max(1, |top-1 logit|) (1e-3: float32 kernels that only sum
in another order differ by about 1e-6 relative; a real bug, wrong positions or a wrong cache, moves
logits by far more). Exit status: 0 when every length matches or differs by a rounding flip; 1 on a
real difference or a length with no kvkit full-cache row to check; 2 on bad arguments.
"""
import argparse
import hashlib
import json
import statistics
import sys
import time

ROUNDING_REL = 1e-3


def first_difference(mine, theirs):
    """Index of the first step where two greedy id lists differ over their common length, else None."""
    for i, (a, b) in enumerate(zip(mine, theirs)):
        if a != b:
            return i
    return None


def check_step(logits_row, mine, theirs):
    """At a differing step: PyTorch's top-1 minus top-2 logit, the gap between its token and kvkit's,
    and whether that gap is small enough to be float rounding. logits_row: a list of floats."""
    order = sorted(range(len(logits_row)), key=lambda j: -logits_row[j])
    top1, top2 = logits_row[order[0]], logits_row[order[1]]
    gap = logits_row[mine] - logits_row[theirs]
    return {'margin': top1 - top2, 'gap': gap, 'rounding': 0 <= gap < ROUNDING_REL * max(1.0, abs(top1))}


def compare(mine, logits, theirs):
    """mine, theirs: greedy ids; logits[i]: PyTorch's logits (list of floats) at step i."""
    i = first_difference(mine, theirs)
    steps = min(len(mine), len(theirs))
    if i is None:
        return {'status': 'match', 'stepsCompared': steps, 'firstDifference': None}
    at = check_step(logits[i], mine[i], theirs[i])
    return {'status': 'rounding flip' if at['rounding'] else 'DIFFER', 'stepsCompared': steps, 'firstDifference': i,
            'pytorchToken': mine[i], 'kvkitToken': theirs[i], 'margin': at['margin'], 'gap': at['gap']}


def prompt_sha256(ids):
    """bench/webgpu-decode.ts's promptSha256: sha256 of the ids joined by ','"""
    return hashlib.sha256(','.join(map(str, ids)).encode()).hexdigest()


def positive_ints(text, what):
    try:
        xs = [int(x) for x in text.split(',')]
    except ValueError:
        raise argparse.ArgumentTypeError(f'{what}: {text!r} is not a comma-separated list of integers')
    if any(x < 1 for x in xs):
        raise argparse.ArgumentTypeError(f'{what}: {text!r} has a value below 1')
    return xs


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', default='models/fixture-14m')
    ap.add_argument('--ids', required=True, help='bench/webgpu-decode.ts --ids-out file')
    ap.add_argument('--kvkit', help='bench/webgpu-decode.ts --json file: full-cache ids to check, and its figures beside')
    ap.add_argument('--device', default='cuda', choices=['cuda', 'cpu'])
    ap.add_argument('--lengths', type=lambda t: positive_ints(t, '--lengths'), help='default: every prompt of --ids')
    ap.add_argument('--new', type=int, help="greedy decode steps (default: kvkit's --new from --kvkit, else 64)")
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--threads', type=int, help='torch.set_num_threads on --device cpu')
    ap.add_argument('--json')
    a = ap.parse_args(argv)
    if a.runs < 1:
        ap.error(f'--runs: {a.runs} is below 1')
    if a.new is not None and a.new < 1:
        ap.error(f'--new: {a.new} is below 1')
    return a


def run(model, torch, ids, n, steps, device):
    """prefill ids[0 .. n-1), then `steps` greedy steps from ids[n-1]: prefill ms, ms per step, ids, logits per step"""
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    rows = []
    tokens = []
    with torch.inference_mode():
        prompt = torch.tensor([ids[: n - 1]], device=device)
        sync()
        t0 = time.perf_counter()
        out = model(prompt, use_cache=True)
        sync()
        t1 = time.perf_counter()
        past = out.past_key_values
        nxt = ids[n - 1]
        for s in range(steps):
            out = model(torch.tensor([[nxt]], device=device), past_key_values=past, use_cache=True,
                        position_ids=torch.tensor([[n - 1 + s]], device=device))
            past = out.past_key_values
            row = out.logits[0, -1]
            rows.append(row)
            nxt = int(row.argmax())  # read back, as kvkit reads its sampled token back
            tokens.append(nxt)
        sync()
        t2 = time.perf_counter()
    return (t1 - t0) * 1000, (t2 - t1) * 1000 / steps, tokens, rows


def main(argv):
    a = parse_args(argv)
    prompts = {p['length']: p['ids'] for p in json.load(open(a.ids))['prompts']}
    kvkit = json.load(open(a.kvkit)) if a.kvkit else None
    steps = a.new or (kvkit['newTokens'] if kvkit else 64)
    lengths = a.lengths or sorted(prompts)
    missing = [n for n in lengths if n not in prompts]
    if missing:
        sys.exit(f'--lengths: {missing} not among the prompts of {a.ids} ({sorted(prompts)})')

    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    if a.device == 'cuda' and not torch.cuda.is_available():
        sys.exit('--device cuda: torch sees no CUDA device (use --device cpu)')
    device = torch.device(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
    # float16 checkpoint widened to float32, as kvkit widens it; eager attention (no SDPA, no flash)
    model = AutoModelForCausalLM.from_pretrained(a.model, attn_implementation='eager').to(torch.float32).to(device).eval()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    attn = model.config._attn_implementation
    gpu = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'
    print(f'pytorch {torch.__version__}, transformers {transformers.__version__}, {gpu}, float32, attention {attn}, {steps} greedy steps, {a.runs} runs after a warm-up', flush=True)
    run(model, torch, prompts[lengths[0]], lengths[0], min(steps, 8), device)  # warm-up: kernels chosen, allocator filled

    rows = []
    ok = True
    for n in lengths:
        ids = prompts[n]
        runs = [run(model, torch, ids, n, steps, device) for _ in range(a.runs)]
        decode = statistics.median(r[1] for r in runs)
        tokens, logits = runs[-1][2], runs[-1][3]
        r = {'engine': 'pytorch', 'device': gpu, 'length': n, 'prefillMs': statistics.median(r[0] for r in runs),
             'decodeMsPerToken': decode, 'tokensPerS': 1000 / decode, 'prefillRunsMs': [x[0] for x in runs],
             'decodeRunsMsPerToken': [x[1] for x in runs], 'ids': tokens, 'idsStable': all(x[2] == tokens for x in runs),
             'kernels': f'torch {torch.__version__} transformers {transformers.__version__} float32 {attn}'}
        print(f"pytorch {n:6d}  prefill {r['prefillMs']:9.1f} ms  decode {decode:8.3f} ms/tok  {r['tokensPerS']:8.1f} tok/s  ids {','.join(map(str, tokens[:8]))}", flush=True)
        if kvkit:
            full = next((k for k in kvkit['rows'] if k['length'] == n and k['policy'] == 'full'), None)
            if full is None:
                r['check'] = {'status': 'no kvkit full-cache row'}
                ok = False
            elif kvkit['promptSha256'].get(str(n)) != prompt_sha256(ids):
                r['check'] = {'status': f'kvkit ran another prompt of {n} tokens than {a.ids} holds'}
                ok = False
            else:
                r['check'] = compare(tokens, [row.float().cpu().tolist() for row in logits], full['ids'])
                ok &= r['check']['status'] != 'DIFFER'
            c = r['check']
            detail = '' if c.get('firstDifference') is None else (
                f" at step {c['firstDifference']}: pytorch {c['pytorchToken']}, kvkit {c['kvkitToken']}, "
                f"pytorch's top-1 minus top-2 {c['margin']:.3g}, its token minus kvkit's {c['gap']:.3g}")
            print(f"  greedy ids vs kvkit {kvkit['backend']} full cache: {c['status']}{detail}", flush=True)
            for k in (k for k in kvkit['rows'] if k['length'] == n):
                print(f"  kvkit {kvkit['backend']} {k['policy']:40s} {k['decodeMsPerToken']:8.3f} ms/tok  {k['tokensPerS']:8.1f} tok/s  "
                      f"{decode / k['decodeMsPerToken']:5.2f}x PyTorch eager", flush=True)
        rows.append(r)
        if a.json:
            json.dump({'engine': 'pytorch', 'device': gpu, 'newTokens': steps, 'runs': a.runs, 'roundingRel': ROUNDING_REL, 'rows': rows},
                      open(a.json, 'w'), indent=1)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
