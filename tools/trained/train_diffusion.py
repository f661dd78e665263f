"""Trains kvkit's masked-diffusion fixture (issue 19): a Dream-convention diffusion LM (Qwen2 weights with
Q/K/V biases, bidirectional attention, `mask_token_id`, logits shifted by one as Dream's) adapted from the
causal fixture model the way Dream adapts Qwen2.5 (Ye et al. 2025, "Dream 7B", section 2: AR
initialisation, shifted prediction), with the masked-diffusion objective of LLaDA (Nie et al. 2025,
eq. 3 / MDLM): a ratio t ~ U(eps, 1) per sequence, each token masked with probability t, cross-entropy on
the masked tokens weighted 1/t. Task samples are masked in their answer only (LLaDA's SFT, section 2.3)
half of the time, the answer followed by end-of-text tokens to the sequence's end as LLaDA pads with EOS.

Run on the GPU host from the project root:
  python3 tools/trained/train_diffusion.py --out OUT/diffusion-14m [--seconds 390]
Writes a Hugging Face-style folder: config.json, model.safetensors (float16), tokenizer files with the
added <|mask|> token, generation_config.json, golden.json (float32 logits of the saved float16 weights),
reference_eval.json (passkey / niah_single at 1024 prompt tokens, decoded by tools/trained/diffusion.py),
train_log.txt.
"""
import argparse, json, math, multiprocessing as mp, os, random, sys, time

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Corpus, DecoderLM, load_weights, read_config, say, script_args  # noqa: E402
from diffusion import generate, shifted_logits  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument('--seconds', type=float, default=390)
p.add_argument('--batch', type=int, default=32)
p.add_argument('--length', type=int, default=1088, help='tokens per training sequence')
p.add_argument('--lr', type=float, default=6e-4)
p.add_argument('--eval_n', type=int, default=24)
p.add_argument('--workers', type=int, default=6)
args, log = script_args(p, '--base', 'fixture-14m')
TOK = os.path.join(args.base, 'tokenizer.json')
GEN = 64  # answer region of a task sample: the answer, then end-of-text to the end


def make_batch(cp, rng, B, L, mask_id):
    """(clean ids [B, L], maskable [B, L] bool): task samples end in answer + EOT fill; text fills the row"""
    import numpy as np
    x = np.full((B, L), cp.EOT, dtype=np.int64); maskable = np.ones((B, L), dtype=bool)
    for b in range(B):
        if rng.random() < 0.6:
            P = rng.randrange(128, L - GEN + 1)
            s, plen = cp.task_sample(P + GEN // 2, rng)
            n = min(len(s), L); x[b, :n] = s[:n]
            if rng.random() < 0.5: maskable[b, :plen] = False
        else:
            s = cp.text_sample(L, rng); x[b, :len(s)] = s
    maskable[:, 0] = False  # the first token is never predicted (Dream's shift has no row for it)
    return torch.from_numpy(x), torch.from_numpy(maskable)


def producer(q, seed, B, L, mask_id):
    cp = Corpus(TOK); rng = random.Random(seed)
    while True: q.put(make_batch(cp, rng, B, L, mask_id))


def dream_config(base, vocab, mask_id):
    return {
        'architectures': ['DreamModel'], 'model_type': 'Dream', 'attention_dropout': 0.0,
        'bos_token_id': base['bos_token_id'], 'eos_token_id': base['eos_token_id'], 'pad_token_id': base['pad_token_id'],
        'mask_token_id': mask_id, 'hidden_act': 'silu', 'hidden_size': base['hidden_size'],
        'intermediate_size': base['intermediate_size'], 'num_hidden_layers': base['num_hidden_layers'],
        'num_attention_heads': base['num_attention_heads'], 'num_key_value_heads': base['num_key_value_heads'],
        'head_dim': base['head_dim'], 'max_position_embeddings': 2048, 'rms_norm_eps': base['rms_norm_eps'],
        'rope_theta': base.get('rope_theta') or base['rope_parameters']['rope_theta'], 'rope_scaling': None,
        'tie_word_embeddings': True, 'use_cache': False, 'use_sliding_window': False, 'sliding_window': None,
        'vocab_size': vocab, 'torch_dtype': 'float16', 'initializer_range': 0.02,
    }


def write_tokenizer(out, mask_id):
    t = json.load(open(TOK))
    t['added_tokens'].append({'id': mask_id, 'content': '<|mask|>', 'single_word': False, 'lstrip': False,
                              'rstrip': False, 'normalized': False, 'special': True})
    json.dump(t, open(os.path.join(out, 'tokenizer.json'), 'w'), ensure_ascii=False)
    tc = json.load(open(os.path.join(args.base, 'tokenizer_config.json')))
    tc['mask_token'] = '<|mask|>'
    json.dump(tc, open(os.path.join(out, 'tokenizer_config.json'), 'w'), indent=2)


def main():
    base = read_config(args.base)
    mask_id = base['vocab_size']; vocab = mask_id + 1
    cfg = dream_config(base, vocab, mask_id)
    model = DecoderLM(cfg, bias=True)
    sd = load_weights(args.base)
    emb = sd['model.embed_tokens.weight']
    sd['model.embed_tokens.weight'] = torch.cat([emb, emb.mean(0, keepdim=True)])
    missing, _ = model.load_state_dict(sd, strict=False)
    assert all(k.endswith('_proj.bias') for k in missing), missing
    for k in missing: model.state_dict()[k].zero_()
    dev = args.device
    model = model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    q = mp.Queue(maxsize=16)
    procs = [mp.Process(target=producer, args=(q, args.seed + i, args.batch, args.length, mask_id), daemon=True) for i in range(args.workers)]
    for pr in procs: pr.start()
    say(log, 'params', sum(p.numel() for p in model.parameters()), 'vocab', vocab, 'mask', mask_id)
    t0 = time.time(); step = 0; warm = 100; ema = None
    while time.time() - t0 < args.seconds:
        frac = (time.time() - t0) / args.seconds
        lr = args.lr * min(1.0, (step + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups: g['lr'] = lr
        x, maskable = q.get(); x, maskable = x.to(dev), maskable.to(dev)
        B, L = x.shape
        t = (1e-3 + (1 - 1e-3) * torch.rand(B, 1, device=dev))
        masked = (torch.rand(B, L, device=dev) < t) & maskable
        xin = torch.where(masked, torch.full_like(x, mask_id), x)
        with torch.autocast('cuda', dtype=torch.bfloat16, enabled=dev == 'cuda'):
            logits = shifted_logits(model, xin)
        ce = F.cross_entropy(logits.float().view(-1, vocab), x.view(-1), reduction='none').view(B, L)
        loss = (ce * masked / t).sum() / (B * L)
        opt.zero_grad(set_to_none=True); loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step()
        acc = ((logits.argmax(-1) == x) & masked).sum().item() / max(1, masked.sum().item())
        ema = acc if ema is None else 0.98 * ema + 0.02 * acc
        if step % 100 == 0: say(log, f'step {step} t {time.time() - t0:.0f}s lr {lr:.2e} loss {loss.item():.3f} masked-acc {ema:.3f}')
        step += 1
    for pr in procs: pr.terminate()
    say(log, f'trained {step} steps in {time.time() - t0:.0f}s, {step * args.batch * args.length / 1e6:.1f}M tokens')

    # save float16 (as the causal fixture ships), then measure the saved weights in float32
    model = model.cpu().half().float().to(dev).eval()
    sd = {k: v.detach().half().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(args.out, 'model.safetensors'), metadata={'format': 'pt'})
    json.dump(cfg, open(os.path.join(args.out, 'config.json'), 'w'), indent=2)
    json.dump({'bos_token_id': cfg['bos_token_id'], 'eos_token_id': cfg['eos_token_id'], 'pad_token_id': cfg['pad_token_id'],
               'mask_token_id': mask_id}, open(os.path.join(args.out, 'generation_config.json'), 'w'), indent=2)
    write_tokenizer(args.out, mask_id)
    write_golden(model, mask_id, dev)
    reference_eval(model, mask_id, dev)


def write_golden(model, mask_id, dev):
    cp = Corpus(TOK)
    ids = cp.enc('The pass key is 12345. Remember it. What is the pass key? The pass key is').tolist()
    ids = [cp.EOT] + ids + [mask_id] * 6 + [cp.EOT]
    x = torch.tensor([ids], device=dev)
    with torch.no_grad():
        raw, _ = model(x, causal=False)
    raw = raw[0].double().cpu()
    json.dump({'input_ids': ids, 'note': 'raw (unshifted) logits of the bidirectional forward, float32 from the float16 weights',
               'logits_first8_per_pos': raw[:, :8].tolist(), 'logits_sum_per_pos': raw.sum(-1).tolist(),
               'top10_per_pos': raw.topk(10, -1).indices.tolist()},
              open(os.path.join(args.out, 'golden.json'), 'w'))


def reference_eval(model, mask_id, dev):
    cp = Corpus(TOK); res = {}
    for task in ['passkey', 'niah_single']:
        rng = random.Random(7); hits = 0
        for _ in range(args.eval_n):
            s, plen = cp.task_sample(1024, rng, task)
            ans = cp.tok.decode(s[plen:].tolist()).strip()
            out, _ = generate(model, torch.tensor(s[:plen].astype('int64'), device=dev), mask_id, 32, 32, 32)
            text = cp.tok.decode([t for t in out.tolist() if t != cp.EOT])
            hits += int(ans.split()[-1].rstrip('.') in text)
        res[task] = hits / args.eval_n
    say(log, 'reference eval at 1024 tokens, gen 32, block 32, 32 steps:', res)
    json.dump(res, open(os.path.join(args.out, 'reference_eval.json'), 'w'))


if __name__ == '__main__':
    mp.set_start_method('spawn')
    main()
