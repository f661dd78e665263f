"""Trains TRIM-KV retention gates for the fixture model (issue 19), the paper's recipe scaled down
(Bui et al. 2025, "Cache What Lasts: Token Retention for Memory-Bounded KV Cache in LLMs", section 3):

- one gate per layer, beta_i = sigmoid(W_l h_i + b_l), one value per KV head, h_i the residual stream
  entering layer l (what kvkit's `trimkv` policy reads: HookCapture.hidden);
- retention-gated attention in the frozen model: the logit of query t on key i gets + (t - i) log beta_i;
- loss = KL(full model || gated model) on the next-token distributions (answer tokens weighted x4)
  + lambda * capacity loss, mean over layers, heads and queries of relu(sum_i beta_i^(t - i) - M) / M.

Run on the GPU host from the project root:
  python3 tools/trained/train_trimkv.py --out OUT/fixture-14m-trimkv-gates [--seconds 200] [--capacity 512] [--books DIR]
Writes gates.safetensors (gates.{l}.weight [kvHeads, hidden], gates.{l}.bias [kvHeads], float32: the format
src/policies/trimkv-gates.ts reads) and train_log.txt.
"""
import argparse, math, os, random, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Corpus, load_model, say, script_args  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument('--seconds', type=float, default=200)
p.add_argument('--batch', type=int, default=2)
p.add_argument('--length', type=int, default=4096)
p.add_argument('--capacity', type=int, default=512, help='M of the capacity loss, tokens per KV head')
p.add_argument('--lam', type=float, default=1.0, help='weight of the capacity loss')
p.add_argument('--lr', type=float, default=3e-3)
p.add_argument('--books', default=None, help='folder of .txt books for the haystacks (default: data/books, the eval\'s books)')
args, log = script_args(p, '--model', 'fixture-14m')


def main():
    dev = args.device
    model, c = load_model(args.model, dev)
    model.eval().requires_grad_(False)
    K, Hd, nL = c['num_key_value_heads'], c['hidden_size'], c['num_hidden_layers']
    gates = nn.ModuleList([nn.Linear(Hd, K) for _ in range(nL)]).to(dev)
    for g in gates:
        nn.init.zeros_(g.weight); nn.init.constant_(g.bias, 8.0)  # beta ~ 1: start from the full cache
    opt = torch.optim.Adam(gates.parameters(), lr=args.lr)
    cp = Corpus(os.path.join(args.model, 'tokenizer.json'), **({'books_dir': args.books} if args.books else {})); rng = random.Random(args.seed)
    T = args.length
    dist = (torch.arange(T, device=dev)[:, None] - torch.arange(T, device=dev)[None, :]).float()  # t - i
    causal = dist >= 0
    caps = []

    def bias_fn(layer, x):
        log_beta = F.logsigmoid(gates[layer](x)).transpose(1, 2)  # [B, K, T]
        b = dist * log_beta[:, :, None, :]  # [B, K, T(query), T(key)]
        kept = torch.exp(b.masked_fill(~causal, float('-inf'))).sum(-1)  # sum_i beta_i^(t-i)
        caps.append(F.relu(kept - args.capacity).mean() / args.capacity)
        return b

    t0 = time.time(); step = 0
    while time.time() - t0 < args.seconds:
        ids, ans, _ = cp.batch(args.batch, T, rng, p_task=0.8)
        ids, ans = ids.to(dev), ans.to(dev)
        with torch.no_grad():
            teacher, _ = model(ids)
        caps.clear()
        student, _ = model(ids, attn_bias=bias_fn)
        w = (1.0 + 3.0 * ans)[:, 1:].reshape(-1)  # row t predicts token t + 1: weight by the predicted token
        kl = F.kl_div(student[:, :-1].log_softmax(-1).reshape(-1, student.shape[-1]),
                      teacher[:, :-1].log_softmax(-1).reshape(-1, teacher.shape[-1]), log_target=True, reduction='none').sum(-1)
        kl = (kl * w).sum() / w.sum()
        cap = torch.stack(caps).mean()
        loss = kl + args.lam * cap
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        if step % 20 == 0:
            with torch.no_grad():
                lb = torch.stack([F.logsigmoid(g.bias) for g in gates])
            say(log, f'step {step} t {time.time() - t0:.0f}s kl {kl.item():.4f} capacity {cap.item():.4f} bias-logbeta mean {lb.mean().item():.2e}')
        step += 1
    say(log, f'trained {step} steps of {args.batch} x {T} tokens in {time.time() - t0:.0f}s, capacity M = {args.capacity}')
    sd = {}
    for l, g in enumerate(gates):
        sd[f'gates.{l}.weight'] = g.weight.detach().float().cpu().contiguous()
        sd[f'gates.{l}.bias'] = g.bias.detach().float().cpu().contiguous()
    save_file(sd, os.path.join(args.out, 'gates.safetensors'), metadata={'format': 'trimkv-gates', 'capacity': str(args.capacity)})


if __name__ == '__main__':
    main()
