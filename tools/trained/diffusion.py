"""Masked-diffusion decoding shared by the diffusion training script and its reference evaluation:
LLaDA's generate() (github.com/ML-GSAI/LLaDA, generate.py: semi-autoregressive blocks, 'low_confidence'
remasking, greedy) on a Dream-convention model (github.com/HKUNLP/Dream: the logits at position i
predict the token at i + 1, so the first row is repeated: cat([logits[:, :1], logits[:, :-1]])).
"""
import torch


def shifted_logits(model, x):
    logits, _ = model(x, causal=False)
    return torch.cat([logits[:, :1], logits[:, :-1]], 1)


def transfer_counts(masked, steps):
    """LLaDA get_num_transfer_tokens: a block's masks split evenly over its steps, the remainder first"""
    base, rem = divmod(masked, steps)
    return [base + (1 if s < rem else 0) for s in range(steps)]


@torch.no_grad()
def generate(model, prompt, mask_id, gen_length=32, block_length=32, steps=32):
    """prompt: 1-D LongTensor on the model's device. Returns (generated ids [gen_length], forward passes)."""
    assert gen_length % block_length == 0 and steps % (gen_length // block_length) == 0
    P = prompt.numel()
    x = torch.cat([prompt, torch.full((gen_length,), mask_id, dtype=torch.long, device=prompt.device)])[None]
    blocks = gen_length // block_length; per_block = steps // blocks; passes = 0
    for b in range(blocks):
        lo, hi = P + b * block_length, P + (b + 1) * block_length
        for n in transfer_counts(block_length, per_block):
            logits = shifted_logits(model, x); passes += 1
            p = logits[0, lo:hi].float().softmax(-1)
            conf, tok = p.max(-1)
            masked = x[0, lo:hi] == mask_id
            conf = torch.where(masked, conf, torch.full_like(conf, -1.0))
            if n == 0: continue
            # ties: the lower position first (stable sort on the negated confidence)
            order = torch.sort(-conf, stable=True).indices[:n]
            x[0, lo + order] = tok[order]
    return x[0, P:], passes
