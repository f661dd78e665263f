"""PyTorch's decodes of the diffusion fixture for kvkit's tests (test/data/diffusion-decode.json): the
prompts of `kvkit prompts --model models/diffusion-14m ... --out FILE` decoded by tools/trained/diffusion.py
(LLaDA's loop with Dream's shifted logits, greedy, low-confidence remasking) at several block settings.

  python3 tools/trained/diffusion_reference.py --prompts FILE --out test/data/diffusion-decode.json
"""
import argparse, json, os, sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, load_model  # noqa: E402
from diffusion import generate  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument('--model', default=os.path.join(ROOT, 'models', 'diffusion-14m'))
p.add_argument('--prompts', required=True)
p.add_argument('--out', required=True)
p.add_argument('--settings', default='16,8,16;32,32,32;24,8,12', help='gen_length,block_length,steps;...')
args = p.parse_args()

model, c = load_model(args.model, 'cpu')
model.eval()
cases = []
samples = [json.loads(line) for line in open(args.prompts)]
for i, s in enumerate(samples):
    g, b, st = [int(x) for x in args.settings.split(';')[i % len(args.settings.split(';'))].split(',')]
    ids, _ = generate(model, torch.tensor(s['prompt_ids']), c['mask_token_id'], g, b, st)
    cases.append({'task': s['task'], 'prompt_ids': s['prompt_ids'], 'gen_length': g, 'block_length': b, 'steps': st, 'ids': ids.tolist()})
    print(s['task'], g, b, st, ids.tolist(), flush=True)
os.makedirs(os.path.dirname(args.out), exist_ok=True)
json.dump({'model': 'models/diffusion-14m', 'cases': cases}, open(args.out, 'w'))
