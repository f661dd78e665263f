/**
 * Tiny random Dream folders and the independent references the diffusion tests check the runtime
 * against: a plain float64 bidirectional forward written from the Qwen2 equations (no causal mask), and
 * LLaDA's decoding loop over it, written from generate.py without any of the runtime's code.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { plainOps } from './plain-ops.js'
import { TINY_DREAM, writeDreamFolder, type DreamShape, type Tensors } from '../tools/dream-random.js'

export { TINY_DREAM }

/** a fresh tiny Dream folder and its tensors */
export function makeTinyDream(seed = 1, shape: DreamShape = TINY_DREAM, extra: Record<string, unknown> = {}): { path: string; t: Tensors; shape: DreamShape } {
  const path = mkdtempSync(join(tmpdir(), 'kvkit-dream-'))
  return { path, t: writeDreamFolder(path, shape, seed, extra), shape }
}

/** the full bidirectional forward in float64: logits [ids.length][vocab] */
export function plainBidirectional(t: Tensors, s: DreamShape, ids: readonly number[], theta = 100000, eps = 1e-5): Float64Array[] {
  const { hidden: H, heads: NH, kvHeads: KVH, headDim: D, intermediate: I, vocab: V } = s
  const W = (n: string) => t[n].data
  const invFreq = Array.from({ length: D / 2 }, (_, i) => 1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / D))))
  const { rms, lin, rope } = plainOps(eps, D, invFreq, true)
  let xs = ids.map((id) => Float64Array.from(W('model.embed_tokens.weight').subarray(id * H, (id + 1) * H)))
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}.`
    const xn = xs.map((x) => rms(x, W(p + 'input_layernorm.weight')))
    const q = xn.map((x, pos) => rope(lin(x, W(p + 'self_attn.q_proj.weight'), NH * D, W(p + 'self_attn.q_proj.bias')), pos))
    const k = xn.map((x, pos) => rope(lin(x, W(p + 'self_attn.k_proj.weight'), KVH * D, W(p + 'self_attn.k_proj.bias')), pos))
    const v = xn.map((x) => lin(x, W(p + 'self_attn.v_proj.weight'), KVH * D, W(p + 'self_attn.v_proj.bias')))
    xs = xs.map((x, i) => {
      const att = new Float64Array(NH * D)
      for (let h = 0; h < NH; h++) {
        const g = Math.floor(h / (NH / KVH))
        // every key, before and after: no causal mask
        const sc = k.map((kj) => { let a = 0; for (let c = 0; c < D; c++) a += q[i][h * D + c] * kj[g * D + c]; return a / Math.sqrt(D) })
        const m = Math.max(...sc)
        const e = sc.map((z) => Math.exp(z - m))
        const z = e.reduce((a, b) => a + b, 0)
        e.forEach((pj, j) => { for (let c = 0; c < D; c++) att[h * D + c] += (pj / z) * v[j][g * D + c] })
      }
      const o = lin(att, W(p + 'self_attn.o_proj.weight'), H)
      const y = x.map((val, c) => val + o[c])
      const yn = rms(y, W(p + 'post_attention_layernorm.weight'))
      const gate = lin(yn, W(p + 'mlp.gate_proj.weight'), I)
      const up = lin(yn, W(p + 'mlp.up_proj.weight'), I)
      const act = gate.map((gv, c) => (gv / (1 + Math.exp(-gv))) * up[c])
      const down = lin(act, W(p + 'mlp.down_proj.weight'), H)
      return y.map((val, c) => val + down[c])
    })
  }
  return xs.map((x) => lin(rms(x, W('model.norm.weight')), W('model.embed_tokens.weight'), V))
}

/**
 * LLaDA's generate() (low_confidence remasking, greedy) with Dream's logit shift, over the float64
 * forward: the answer's tokens [genLength] and, per step, the answer indices unmasked.
 */
export function plainDiffusionDecode(t: Tensors, s: DreamShape, prompt: number[], genLength: number, blockLength: number, steps: number): { tokens: number[]; perStep: number[][] } {
  const mask = s.vocab - 1
  const x = [...prompt, ...new Array(genLength).fill(mask)]
  const blocks = genLength / blockLength
  const per = steps / blocks
  const perStep: number[][] = []
  for (let b = 0; b < blocks; b++) {
    const lo = prompt.length + b * blockLength
    const n = x.slice(lo, lo + blockLength).filter((v) => v === mask).length
    const counts = Array.from({ length: per }, (_, i) => Math.floor(n / per) + (i < n % per ? 1 : 0))
    for (let st = 0; st < per; st++) {
      const logits = plainBidirectional(t, s, x)
      const cand: { j: number; tok: number; p: number }[] = []
      for (let j = lo; j < lo + blockLength; j++) {
        if (x[j] !== mask) continue
        const row = logits[j - 1]
        // the mask token is never predicted
        let best = 0
        for (let i = 1; i < row.length; i++) if (row[i] > row[best] && i !== mask) best = i
        const z = row.reduce((a, v) => a + Math.exp(v - row[best]), 0)
        cand.push({ j, tok: best, p: 1 / z })
      }
      cand.sort((a, b) => b.p - a.p || a.j - b.j)
      const chosen = cand.slice(0, counts[st])
      for (const c of chosen) x[c.j] = c.tok
      perStep.push(chosen.map((c) => c.j - prompt.length).sort((a, b) => a - b))
    }
  }
  return { tokens: x.slice(prompt.length), perStep }
}
