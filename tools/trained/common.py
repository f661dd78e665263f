"""What the training scripts of kvkit's trained parts share: the fixture model as a plain PyTorch module
(Llama or Qwen2/Dream weights, causal or bidirectional attention, an optional additive attention bias),
its tokenizer, the bundled books, and the RULER-style retrieval tasks word for word as
models/fixture-14m/train.py (and kvkit's src/eval/tasks.ts) make them.

Shapes: ids [B, T] int64; hidden [B, T, hidden]; q [B, heads, T, head_dim]; k, v [B, kv_heads, T, head_dim].
Weights load from and save to Hugging Face safetensors names, so the output folders load in kvkit and
in transformers.
"""
import json, os, random, re

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def say(log, *a):
    s = ' '.join(str(x) for x in a)
    print(s, flush=True)
    if log:
        log.write(s + '\n'); log.flush()


# ---- model ----
class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__(); self.weight = nn.Parameter(torch.ones(n)); self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


class Attention(nn.Module):
    def __init__(self, c, bias):
        super().__init__()
        H, K, D = c['num_attention_heads'], c['num_key_value_heads'], c['head_dim']
        self.q_proj = nn.Linear(c['hidden_size'], H * D, bias=bias)
        self.k_proj = nn.Linear(c['hidden_size'], K * D, bias=bias)
        self.v_proj = nn.Linear(c['hidden_size'], K * D, bias=bias)
        self.o_proj = nn.Linear(H * D, c['hidden_size'], bias=False)
        self.H, self.K, self.D = H, K, D


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c['hidden_size'], c['intermediate_size'], bias=False)
        self.up_proj = nn.Linear(c['hidden_size'], c['intermediate_size'], bias=False)
        self.down_proj = nn.Linear(c['intermediate_size'], c['hidden_size'], bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c, bias):
        super().__init__()
        self.self_attn = Attention(c, bias); self.mlp = MLP(c)
        self.input_layernorm = RMSNorm(c['hidden_size'], c['rms_norm_eps'])
        self.post_attention_layernorm = RMSNorm(c['hidden_size'], c['rms_norm_eps'])


class Inner(nn.Module):
    def __init__(self, c, bias):
        super().__init__()
        self.embed_tokens = nn.Embedding(c['vocab_size'], c['hidden_size'])
        self.layers = nn.ModuleList([Layer(c, bias) for _ in range(c['num_hidden_layers'])])
        self.norm = RMSNorm(c['hidden_size'], c['rms_norm_eps'])


def rope_theta(c):
    return c.get('rope_theta') or c.get('rope_parameters', {}).get('rope_theta', 10000.0)


def rope_tables(c, T, device):
    """cos, sin [T, head_dim] as transformers' default RoPE: inverse frequencies in float32"""
    D = c['head_dim']
    inv = 1.0 / (rope_theta(c) ** (torch.arange(0, D, 2, dtype=torch.int64, device=device).float() / D))
    f = torch.outer(torch.arange(T, device=device).float(), inv)
    e = torch.cat([f, f], -1)
    return e.cos(), e.sin()


def rotate(x, cos, sin):
    h = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., h:], x[..., :h]], -1) * sin


class DecoderLM(nn.Module):
    """Llama (causal) or Dream (Qwen2 weights, bidirectional) decoder with a tied LM head.

    forward(ids, causal, attn_bias=None, want=()) -> logits [B, T, vocab] and a dict with, per layer, what
    `want` names: 'hidden' (the residual stream entering the layer, [B, T, hidden]), 'v' ([B, K, T, D]),
    'probs_tail' (attention probabilities of the last `tail` queries, without the bias, [B, H, tail, T]).
    attn_bias(layer, x_in) -> an additive logit bias [B, K, T, T] per KV head, or None.
    """

    def __init__(self, c, bias=False):
        super().__init__()
        self.c = c
        self.model = Inner(c, bias)

    def forward(self, ids, causal=True, attn_bias=None, want=(), tail=0):
        c = self.c
        B, T = ids.shape
        cos, sin = rope_tables(c, T, ids.device)
        x = self.model.embed_tokens(ids)
        out = {w: [] for w in want}
        mask = torch.ones(T, T, dtype=torch.bool, device=ids.device).tril() if causal else None
        for li, L in enumerate(self.model.layers):
            if 'hidden' in out: out['hidden'].append(x)
            a = L.self_attn
            xn = L.input_layernorm(x)
            q = a.q_proj(xn).view(B, T, a.H, a.D).transpose(1, 2)
            k = a.k_proj(xn).view(B, T, a.K, a.D).transpose(1, 2)
            v = a.v_proj(xn).view(B, T, a.K, a.D).transpose(1, 2)
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
            if 'v' in out: out['v'].append(v)
            g = a.H // a.K
            kh, vh = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
            bias = attn_bias(li, x) if attn_bias else None
            if bias is None:
                o = F.scaled_dot_product_attention(q, kh, vh, is_causal=causal)
            else:
                s = (q @ kh.transpose(-1, -2)) / (a.D ** 0.5) + bias.repeat_interleave(g, 1)
                if mask is not None: s = s.masked_fill(~mask, float('-inf'))
                o = s.softmax(-1) @ vh
            if 'probs_tail' in out:
                with torch.no_grad():
                    s = (q[:, :, T - tail:] @ kh.transpose(-1, -2)) / (a.D ** 0.5)
                    if mask is not None: s = s.masked_fill(~mask[T - tail:], float('-inf'))
                    out['probs_tail'].append(s.softmax(-1))
            x = x + a.o_proj(o.transpose(1, 2).reshape(B, T, a.H * a.D))
            x = x + L.mlp(L.post_attention_layernorm(x))
        logits = F.linear(self.model.norm(x), self.model.embed_tokens.weight)
        return logits, out


def read_config(model_dir):
    c = json.load(open(os.path.join(model_dir, 'config.json')))
    c.setdefault('head_dim', c['hidden_size'] // c['num_attention_heads'])
    return c


def load_weights(model_dir):
    files = sorted(f for f in os.listdir(model_dir) if f.endswith('.safetensors'))
    sd = {}
    for f in files: sd.update(load_file(os.path.join(model_dir, f)))
    return {k: v.float() for k, v in sd.items()}


def load_model(model_dir, device, bias=False):
    c = read_config(model_dir)
    m = DecoderLM(c, bias=bias or c.get('model_type') in ('qwen2', 'Dream'))
    missing, unexpected = m.load_state_dict(load_weights(model_dir), strict=False)
    missing = [k for k in missing if not k.endswith('_proj.bias')]
    if missing or [u for u in unexpected if u != 'lm_head.weight']:
        raise SystemExit(f'{model_dir}: weights do not match the config: missing {missing}, unexpected {unexpected}')
    return m.to(device), c


# ---- data ----
def clean(t):
    t = t.replace('\r', '')
    t = re.sub(r'(?<!\n)\n(?!\n)', ' ', t)
    t = re.sub(r'\n{2,}', '\n\n', t); t = re.sub(r'[ \t]+', ' ', t)
    return t.strip()


class Corpus:
    """the bundled books as token arrays per sentence, and the RULER-style tasks of the fixture's training"""

    def __init__(self, tokenizer_path, books_dir=os.path.join(ROOT, 'data', 'books'), words=os.path.join(ROOT, 'data', 'words.txt')):
        from tokenizers import Tokenizer
        self.tok = Tokenizer.from_file(tokenizer_path)
        self.EOT = self.tok.token_to_id('<|endoftext|>'); self.PAD = self.tok.token_to_id('<|pad|>')
        files = sorted(f for f in os.listdir(books_dir) if f.endswith('.txt'))
        self.sents = []
        for f in files:
            t = clean(open(os.path.join(books_dir, f), encoding='utf-8', errors='replace').read())
            ss = [s for s in re.split(r'(?<=[.!?"\n])(?=[ \n])', t) if s]
            self.sents.append([np.array(e.ids, dtype=np.int32) for e in self.tok.encode_batch(ss, add_special_tokens=False)])
        self.words = [w.strip() for w in open(words, encoding='utf-8') if w.strip()]

    def enc(self, s):
        return np.array(self.tok.encode(s, add_special_tokens=False).ids, dtype=np.int32)

    def haystack(self, n_tokens, rng):
        ss = rng.choice(self.sents); i = rng.randrange(0, max(1, len(ss) - 50)); out = []; n = 0
        while n < n_tokens:
            if i >= len(ss): ss = rng.choice(self.sents); i = 0
            out.append(ss[i]); n += len(ss[i]); i += 1
        return out

    def task(self, name, rng):
        W = self.words
        num = lambda: str(rng.randrange(1000000, 9999999))
        if name == 'niah_single':
            k, v = rng.choice(W), num()
            return [f' One of the special magic numbers for {k} is: {v}.'], f'What is the special magic number for {k} mentioned in the provided text?', f' The special magic number for {k} mentioned in the provided text is {v}.'
        if name == 'niah_multikey':
            keys = rng.sample(W, rng.randint(2, 6)); vals = [num() for _ in keys]; j = rng.randrange(len(keys))
            return [f' One of the special magic numbers for {k} is: {v}.' for k, v in zip(keys, vals)], f'What is the special magic number for {keys[j]} mentioned in the provided text?', f' The special magic number for {keys[j]} mentioned in the provided text is {vals[j]}.'
        if name == 'niah_multivalue':
            k = rng.choice(W); vals = [num() for _ in range(rng.randint(2, 4))]
            return [f' One of the special magic numbers for {k} is: {v}.' for v in vals], f'What are all the special magic numbers for {k} mentioned in the provided text?', f' The special magic numbers for {k} mentioned in the provided text are: {", ".join(vals)}.'
        if name == 'passkey':
            v = str(rng.randrange(10000, 99999))
            return [f' The pass key is {v}. Remember it. {v} is the pass key.'], 'What is the pass key?', f' The pass key is {v}.'
        if name == 'vt':
            n = rng.randint(2, 4); names = [''.join(rng.choice('ABCDEFGHIJKLMNOPQRSTUVWXYZ') for _ in range(5)) for _ in range(n)]
            v = str(rng.randrange(10000, 99999))
            needles = [f' VAR {names[0]} = {v}.'] + [f' VAR {names[i]} = VAR {names[i-1]}.' for i in range(1, n)]
            return needles, f'Find all variables that are assigned the value {v} in the text above.', f' Answer: According to the chain(s) of variable assignment in the text above, {n} variables are assigned the value {v}, they are: {" ".join(names)}.'
        pairs = [('%08x-%04x' % (rng.getrandbits(32), rng.getrandbits(16)), '%08x-%04x' % (rng.getrandbits(32), rng.getrandbits(16))) for _ in range(rng.randint(4, 12))]
        j = rng.randrange(len(pairs))
        return [f' Key "{a}" has value "{b}".' for a, b in pairs], f'What is the value associated with key "{pairs[j][0]}"?', f' The value associated with key "{pairs[j][0]}" is "{pairs[j][1]}".'

    TASKS = ['niah_single', 'niah_multikey', 'niah_multivalue', 'passkey', 'vt', 'kv']
    WEIGHTS = [3, 3, 2, 2, 2, 2]

    def task_sample(self, L, rng, task=None):
        """(ids of prompt + answer + EOT, prompt length): needles at random sentence boundaries, in order"""
        task = task or rng.choices(self.TASKS, self.WEIGHTS)[0]
        needles, q, a = self.task(task, rng)
        n_ids = [self.enc(s) for s in needles]
        qa = self.enc('\n\nQuestion: ' + q + '\nAnswer:'); ans = self.enc(a)
        budget = L - 1 - len(qa) - len(ans) - sum(len(x) for x in n_ids) - 1
        out, n = [], 0
        for s in self.haystack(budget, rng):
            if n + len(s) > budget: break
            out.append(s); n += len(s)
        pos = sorted(rng.randrange(0, len(out) + 1) for _ in n_ids)
        for off, (pp, ni) in enumerate(zip(pos, n_ids)): out.insert(pp + off, ni)
        prompt = np.concatenate([[self.EOT]] + out + [qa]).astype(np.int32)
        return np.concatenate([prompt, ans, [self.EOT]]).astype(np.int32), len(prompt)

    def text_sample(self, L, rng):
        return np.concatenate([[self.EOT]] + self.haystack(L, rng))[:L].astype(np.int32)

    def batch(self, B, L, rng, p_task=0.6):
        """ids [B, L] (PAD after the end), answer mask [B, L] (1 on answer tokens), length per row"""
        x = np.full((B, L), self.PAD, dtype=np.int64); ans = np.zeros((B, L), dtype=np.float32); lens = []
        for b in range(B):
            if rng.random() < p_task:
                s, plen = self.task_sample(L, rng); n = min(len(s), L)
                x[b, :n] = s[:n]; ans[b, plen:n] = 1.0
            else:
                s = self.text_sample(L, rng); n = len(s); x[b, :n] = s
            lens.append(n)
        return torch.from_numpy(x), torch.from_numpy(ans), lens


def seed_all(seed):
    random.seed(seed); np.random.seed(seed); torch.manual_seed(seed)


def script_args(p, base_flag, base_default):
    """adds the flags every training script takes (the base model, --out, --seed, --device), parses them,
    seeds every generator, makes the output folder and opens its train_log.txt: (args, log)"""
    p.add_argument(base_flag, default=os.path.join(ROOT, 'models', base_default))
    p.add_argument('--out', required=True)
    p.add_argument('--seed', type=int, default=1234)
    p.add_argument('--device', default='cuda')
    args = p.parse_args()
    seed_all(args.seed)
    os.makedirs(args.out, exist_ok=True)
    return args, open(os.path.join(args.out, 'train_log.txt'), 'w')
