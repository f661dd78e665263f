# Captures kvpress's decisions for LagKV, KVzip, KVzip+, CriticalKV(SnapKV), CriticalAdaKV(SnapKV) and
# Compactor on the fixture (one passkey prompt, 25% kept), then (time-boxed) runs those presses on the
# prompts of prompts.jsonl in both loops (question in the compressed prompt / question after). Written for
# kvkit's parity test; kvpress is imported from a checkout beside this file, not modified.
import base64, json, os, sys, time, types, traceback
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.environ.get("OUT", "/tmp/out")
T0 = time.time()
SWEEP_SECONDS = float(os.environ.get("SWEEP_SECONDS", "150"))
# CAPTURE=0 skips the decision capture (sweep only); SHARD=i/k sweeps every k-th sample from the i-th, so
# k processes share the GPU (each writes kvpress_accuracy-i.json)
CAPTURE = os.environ.get("CAPTURE", "1") != "0"
SHARD, SHARDS = (int(x) for x in os.environ.get("SHARD", "0/1").split("/"))
class Stub(types.ModuleType):
    # stand-ins for packages imported by presses not used here: any name is a do-nothing class whose
    # instances pass a decorated function through
    def __getattr__(self, name):
        if name.startswith("__"): raise AttributeError(name)
        return type(name, (), {"__init__": lambda self, *a, **k: None, "__call__": lambda self, *a, **k: a[0] if a else None})
for name in ("cachetools", "datasets", "fire"):
    sys.modules[name] = Stub(name)
sys.path.insert(0, os.path.join(HERE, "kvpress"))
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache
import kvpress
from kvpress import (LagKVPress, KVzipPress, CriticalKVPress, CriticalAdaKVPress, CompactorPress, SnapKVPress)

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = "cuda" if torch.cuda.is_available() else "cpu"
MODEL = "models/fixture-14m"
model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32, attn_implementation="sdpa").to(dev).eval()
tok = AutoTokenizer.from_pretrained(MODEL)
cfg = model.config
LAYERS, KVH = cfg.num_hidden_layers, cfg.num_key_value_heads
log = open(os.path.join(OUT, "log.txt" if SHARDS == 1 else "log-%d.txt" % SHARD), "w")
def say(*a):
    s = " ".join(str(x) for x in a)
    print(s, flush=True); log.write(s + "\n"); log.flush()

# Transformers 5.x no longer hands cache_position to attention modules; kvpress reads it
def add_cache_position(module, args, kwargs):
    if kwargs.get("cache_position") is None:
        hs = kwargs.get("hidden_states", args[0] if args else None)
        cache = kwargs.get("past_key_values", None) or kwargs.get("past_key_value", None)
        q = hs.shape[1]
        past = cache.get_seq_length(module.layer_idx) if cache is not None else 0
        kwargs["cache_position"] = torch.arange(past, past + q, device=hs.device)
    return args, kwargs
for layer in model.model.layers:
    layer.self_attn.register_forward_pre_hook(add_cache_position, with_kwargs=True)

def b64(x):
    return base64.b64encode(x.detach().float().cpu().contiguous().numpy().astype("<f4").tobytes()).decode()

def boundary(s, n_kept):
    v, _ = torch.sort(s.float(), descending=True)
    last, first = float(v[n_kept - 1]), float(v[n_kept]) if n_kept < len(v) else None
    return {"last_kept": last, "first_dropped": first, "gap": None if first is None else last - first,
            "n_equal_last_kept": int((s == v[n_kept - 1]).sum())}

@torch.no_grad()
def decode(cache, ids, start, steps):
    out, token, pos = [], ids[start], start
    for _ in range(steps):
        o = model(input_ids=torch.tensor([[token]], device=dev), past_key_values=cache, position_ids=torch.tensor([[pos]], device=dev))
        token = int(o.logits[0, -1].argmax()); pos += 1
        if token == tok.eos_token_id: break
        out.append(token)
    return out

@torch.no_grad()
def run(press, ids, context_len, steps):
    """kvpress's loop: prefill context_len tokens under the press, then the rest of the prompt but its last
    token uncompressed (query-agnostic when context_len < n - 1), decode from the last one"""
    n = len(ids)
    cache = DynamicCache()
    x = torch.tensor([ids[:context_len]], device=dev)
    if press is None:
        model(input_ids=x, past_key_values=cache)
    else:
        with press(model):
            model(input_ids=x, past_key_values=cache)
    held = sum(cache.layers[l].keys.shape[2] for l in range(LAYERS))
    if context_len < n - 1:
        q = torch.tensor([ids[context_len:n - 1]], device=dev)
        model(input_ids=q, past_key_values=cache, position_ids=torch.arange(context_len, n - 1, device=dev)[None])
    out = decode(cache, ids, n - 1, steps)
    for layer in model.model.layers:
        layer.self_attn.masked_key_indices = None
    return out, held

def masked_kept(n):
    """per layer, per KV head: positions not in module.masked_key_indices (kvpress masks, keeps them stored)"""
    res = []
    for layer in model.model.layers:
        m = getattr(layer.self_attn, "masked_key_indices", None)
        keep = [torch.ones(n, dtype=torch.bool) for _ in range(KVH)]
        if m is not None:
            _, h, s = (t.cpu() for t in m)
            for hh in range(KVH):
                keep[hh][s[h == hh]] = False
        res.append([torch.nonzero(k).flatten().tolist() for k in keep])
    return res

prompt = json.load(open("test/data/kvpress/prompt.json"))
ids = prompt["prompt_ids"]
n = len(ids) - 1
RATIO = 0.75
n_kept = int(n * (1 - RATIO))
answer_steps = len(prompt["answer_ids"]) + 3
meta = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()), "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
        "torch": torch.__version__, "transformers": transformers.__version__, "kvpress_commit": open(os.path.join(HERE, "kvpress", "COMMIT")).read().strip(),
        "compression_ratio": RATIO, "n_prefill": n, "n_kept": n_kept, "dtype": "float32", "tf32": False}

def scorer_capture(name, press, wrap_target):
    """ScorerPress family: record score() per layer; kept = topk(n_kept), as ScorerPress.compress takes it"""
    layers = {}
    orig = wrap_target.score
    def score(module, hidden_states, keys, values, attentions, kwargs):
        s = orig(module, hidden_states, keys, values, attentions, kwargs)
        layers[int(module.layer_idx)] = s[0].detach().clone()
        return s
    wrap_target.score = score
    return layers

captures = []
def capture_scorer(name, press, extra=None):
    t = time.time()
    layers = scorer_capture(name, press, press)
    sketches = []
    if extra == "sketch":
        orig_randn = torch.randn
        def randn(*a, **k):
            r = orig_randn(*a, **k); sketches.append(r.detach().clone()); return r
        torch.manual_seed(0)
        torch.randn = randn
    try:
        out, held = run(press, ids, n, answer_steps)
    finally:
        if extra == "sketch": torch.randn = orig_randn
    L = []
    for l in range(LAYERS):
        s = layers[l]
        kept_order = s.topk(n_kept, dim=-1).indices
        L.append({"kept": [sorted(kept_order[h].tolist()) for h in range(KVH)],
                  "scores_f32_b64": [b64(s[h]) for h in range(KVH)],
                  "boundary": [boundary(s[h], n_kept) for h in range(KVH)]})
        if sketches:
            L[-1]["sketch_f32_b64"] = [b64(sketches[l][0, h]) for h in range(KVH)]
    return {"layers": L, "decode": {"ids": out, "text": tok.decode(out)}, "cache_len_after_prefill": held // LAYERS, "elapsed_s": time.time() - t}

def settings(p):
    return {k: (repr(v) if not isinstance(v, (int, float, bool, str, type(None))) else v) for k, v in vars(p).items() if not k.startswith("_")}

def write(fname, press_name, press, body):
    body = {"press": press_name, "kvpress_settings": settings(press), "attn_implementation": "sdpa", "source": "kvpress",
            "n_tokens": n, "n_kept": n_kept, **body}
    json.dump(body, open(os.path.join(OUT, fname), "w"))
    say(fname, "written", body.get("decode", {}).get("text"), "%.1fs" % body.get("elapsed_s", 0))

def capture_masked(name, press, inner=None, kvzip=False):
    t = time.time()
    rec = {}
    if inner is not None:
        base = scorer_capture(name, press, inner)
    if kvzip:
        orig_post, orig_prep = press.compress_post, press.prepare
        def compress_post(m):
            rec["scores"] = press.score_val.detach().clone()
            return orig_post(m)
        def prepare(m, tk, *a, **k):
            pairs = orig_prep(m, tk, *a, **k)
            rec["repeat_ids"] = [r[0].tolist() for _, r in pairs]
            return pairs
        press.compress_post, press.prepare = compress_post, prepare
    cache = DynamicCache()
    with torch.no_grad():
        with press(model):
            model(input_ids=torch.tensor([ids[:n]], device=dev), past_key_values=cache)
        kept = masked_kept(n)
        out = decode(cache, ids, n, answer_steps)
    for layer in model.model.layers:
        layer.self_attn.masked_key_indices = None
    L = []
    for l in range(LAYERS):
        e = {"kept": kept[l], "n_kept": [len(k) for k in kept[l]]}
        if inner is not None:
            e["base_scores_f32_b64"] = [b64(base[l][h]) for h in range(KVH)]
        if kvzip:
            e["scores_f32_b64"] = [b64(rec["scores"][l, 0, h]) for h in range(KVH)]
        L.append(e)
    body = {"layers": L, "decode": {"ids": out, "text": tok.decode(out)}, "elapsed_s": time.time() - t}
    if kvzip:
        body["repeat_ids"] = rec["repeat_ids"]
    return body

jobs = [
    ("lagkv.json", "LagKVPress", lambda: LagKVPress(compression_ratio=RATIO, n_sink=4, lag_size=128), "scorer"),
    ("criticalkv_snapkv.json", "CriticalKVPress(SnapKVPress)", lambda: CriticalKVPress(SnapKVPress(compression_ratio=RATIO)), "scorer"),
    ("compactor.json", "CompactorPress", lambda: CompactorPress(compression_ratio=RATIO), "sketch"),
    ("criticaladakv_snapkv.json", "CriticalAdaKVPress(SnapKVPress)", lambda: CriticalAdaKVPress(SnapKVPress(compression_ratio=RATIO)), "ada"),
    ("kvzip.json", "KVzipPress", lambda: KVzipPress(compression_ratio=RATIO), "kvzip"),
    ("kvzip_plus.json", "KVzipPress(kvzip_plus_normalization=True)", lambda: KVzipPress(compression_ratio=RATIO, kvzip_plus_normalization=True), "kvzip"),
]
if not CAPTURE: jobs = []
full_out, _ = run(None, ids, n, answer_steps)
meta["full_cache_decode"] = {"ids": full_out, "text": tok.decode(full_out)}
say("full:", tok.decode(full_out))
for fname, pname, make, kind in jobs:
    try:
        press = make()
        if kind in ("scorer", "sketch"):
            body = capture_scorer(pname, press, "sketch" if kind == "sketch" else None)
        elif kind == "ada":
            body = capture_masked(pname, press, inner=press.press)
        else:
            body = capture_masked(pname, press, kvzip=True)
        write(fname, pname, press, body)
    except Exception:
        say(fname, "FAILED", traceback.format_exc())
meta["capture_s"] = time.time() - T0
if CAPTURE: json.dump(meta, open(os.path.join(OUT, "meta_peers.json"), "w"))

# ---- accuracy on kvkit's prompts, both loops, time-boxed (samples interleaved across tasks) ----
samples = [json.loads(l) for l in open(os.path.join(HERE, "prompts.jsonl"))]
by_task = {}
for s in samples: by_task.setdefault(s["task"], []).append(s)
# round-robin over the tasks; zip() would stop at the task with fewest samples and drop the rest
groups = list(by_task.values())
order = [g[i] for i in range(max(map(len, groups))) for g in groups if i < len(g)][SHARD::SHARDS]
PRESSES = {
    "LagKV": lambda r: LagKVPress(compression_ratio=r, n_sink=4, lag_size=128),
    "KVzip": lambda r: KVzipPress(compression_ratio=r),
    "KVzip+": lambda r: KVzipPress(compression_ratio=r, kvzip_plus_normalization=True),
    "CriticalKV(SnapKV)": lambda r: CriticalKVPress(SnapKVPress(compression_ratio=r)),
    "CriticalAdaKV(SnapKV)": lambda r: CriticalAdaKVPress(SnapKVPress(compression_ratio=r)),
    "Compactor": lambda r: CompactorPress(compression_ratio=r),
}
rows = []
sweep_start = time.time()
done = 0
for s in order:
    if time.time() - sweep_start > SWEEP_SECONDS: break
    p = s["prompt_ids"]; steps = len(s["answer_ids"]) + 3
    for mode, c in (("question-in-prompt", len(p) - 1), ("question-after", s["context_len"])):
        cells = [("full", 1.0, None)] + [(k, kept, f(1 - kept)) for k, f in PRESSES.items() for kept in (0.5, 0.25, 0.125)]
        for name, kept, press in cells:
            try:
                out, held = run(press, p, c, steps)
                text = tok.decode(out)
                rows.append({"task": s["task"], "index": s["index"], "mode": mode, "press": name, "kept": kept, "text": text,
                             "correct": text.strip().startswith(s["answer"].strip()), "cache_tokens_stored": held})
            except Exception as e:
                rows.append({"task": s["task"], "index": s["index"], "mode": mode, "press": name, "kept": kept, "error": repr(e)[:300]})
    done += 1
    json.dump({"samples_done": done, "seconds": time.time() - sweep_start, "meta": meta, "rows": rows},
              open(os.path.join(OUT, "kvpress_accuracy.json" if SHARDS == 1 else "kvpress_accuracy-%d.json" % SHARD), "w"))
say("sweep: %d samples in %.0fs" % (done, time.time() - sweep_start))
say("total %.0fs" % (time.time() - T0))
