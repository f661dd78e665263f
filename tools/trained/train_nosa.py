"""Learns NOSA-style query-agnostic eviction scores for the fixture model (issue 19), scaled down from NOSA
(Huang et al. 2025, "NOSA: Native and Offloadable Sparse Attention", section 3: the query-agnostic part of
the selection scores each token from its value vector, so it needs no query and changes slowly).

Per layer and KV head a linear score s_i = w . v_i + b over the token's value row v_i [head_dim], fitted by
ridge regression (closed form) to the log of the attention mass the token receives from the questions
and answers of RULER-style task samples (the mean over the last `--tail` queries and the KV head's query
heads), the tokens those queries can reach; the attention sink (token 0) and the tail itself are left
out. Held-out samples check it: Spearman correlation of 64-token block scores (max over the block) with
the measured mass, against the value-norm stand-in kvkit used before.

Run from the project root (GPU host, or --device cpu with fewer samples):
  python3 tools/trained/train_nosa.py --out OUT/fixture-14m-nosa-scores [--samples 256] [--length 4096]
Writes scores.safetensors (scores.{l}.weight [kvHeads, head_dim], scores.{l}.bias [kvHeads], float32: the
format src/policies/nosa-scores.ts reads), eval.json and train_log.txt.
"""
import argparse, json, os, random, sys, time

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Corpus, load_model, say, script_args  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument('--samples', type=int, default=256)
p.add_argument('--heldout', type=int, default=32)
p.add_argument('--length', type=int, default=4096)
p.add_argument('--tail', type=int, default=64)
p.add_argument('--block', type=int, default=64)
p.add_argument('--ridge', type=float, default=1e-3, help='ridge strength per sample row')
args, log = script_args(p, '--model', 'fixture-14m')


def collect(model, cp, rng, n, dev):
    """per (layer, KV head): values [N, D] and log mass [N] of the reachable, non-sink tokens, per sample"""
    rows = []
    for _ in range(n):
        s, _ = cp.task_sample(args.length, rng)
        ids = torch.tensor(s[None].astype('int64'), device=dev)
        T = ids.shape[1]
        with torch.no_grad():
            _, out = model(ids, want=('v', 'probs_tail'), tail=args.tail)
        sample = []
        for v, pt in zip(out['v'], out['probs_tail']):
            K = v.shape[1]; g = pt.shape[1] // K
            mass = pt[0].view(K, g, args.tail, T).mean((1, 2))  # [K, T]
            keep = slice(1, T - args.tail)
            sample.append((v[0, :, keep].float(), torch.log(mass[:, keep] + 1e-6)))
        rows.append(sample)
    return rows


def block_max(x, block):
    n = x.shape[-1] // block
    return x[..., :n * block].reshape(*x.shape[:-1], n, block).amax(-1)


def spearman(a, b):
    ra = a.argsort().argsort().float(); rb = b.argsort().argsort().float()
    ra -= ra.mean(); rb -= rb.mean()
    return (ra @ rb / (ra.norm() * rb.norm() + 1e-12)).item()


def main():
    dev = args.device
    model, c = load_model(args.model, dev); model.eval()
    cp = Corpus(os.path.join(args.model, 'tokenizer.json'))
    t0 = time.time()
    train = collect(model, cp, random.Random(args.seed), args.samples, dev)
    test = collect(model, cp, random.Random(args.seed + 1), args.heldout, dev)
    say(log, f'collected {args.samples} + {args.heldout} samples of {args.length} tokens in {time.time() - t0:.0f}s')
    nL, K, D = c['num_hidden_layers'], c['num_key_value_heads'], c['head_dim']
    sd = {}; report = {'layers': []}
    for l in range(nL):
        W = torch.zeros(K, D); bias = torch.zeros(K); per_head = []
        for h in range(K):
            X = torch.cat([torch.cat([s[l][0][h], torch.ones(s[l][0].shape[1], 1, device=dev)], 1) for s in train]).double()
            y = torch.cat([s[l][1][h] for s in train]).double()
            A = X.T @ X + args.ridge * X.shape[0] * torch.eye(D + 1, device=dev, dtype=torch.float64)
            w = torch.linalg.solve(A, X.T @ y)
            W[h], bias[h] = w[:D].float().cpu(), w[D].float().cpu()
            learned, stand_in = [], []
            for s in test:
                v, target = s[l][0][h], s[l][1][h]
                pred = v @ w[:D].float() + w[D].float()
                tb = block_max(target, args.block)
                learned.append(spearman(block_max(pred, args.block), tb))
                stand_in.append(spearman(block_max(v.norm(dim=-1), args.block), tb))
            per_head.append({'learned': sum(learned) / len(learned), 'value_norm': sum(stand_in) / len(stand_in)})
        sd[f'scores.{l}.weight'] = W.contiguous(); sd[f'scores.{l}.bias'] = bias.contiguous()
        report['layers'].append(per_head)
        say(log, f'layer {l}: block Spearman with the measured mass, learned vs value norm: ' +
            ', '.join(f"head {h} {r['learned']:.3f} vs {r['value_norm']:.3f}" for h, r in enumerate(per_head)))
    allh = [r for L in report['layers'] for r in L]
    report['mean'] = {k: sum(r[k] for r in allh) / len(allh) for k in ('learned', 'value_norm')}
    say(log, 'mean block Spearman, learned vs value norm:', report['mean'])
    save_file(sd, os.path.join(args.out, 'scores.safetensors'), metadata={'format': 'nosa-scores', 'block': str(args.block)})
    json.dump(report, open(os.path.join(args.out, 'eval.json'), 'w'), indent=1)


if __name__ == '__main__':
    main()
