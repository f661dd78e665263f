import { beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { ModelInputError } from '../src/model/errors.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { randomGatesFile, specsPerPolicy, withOption } from './policy-grid-helpers.js'

// kvDtype 'float16' on the fixture model through the public API: the same greedy tokens (mostly) and
// close logits as float32, half the KV bytes, and every policy running on float16 pages.
let m32: LlamaModel
let m16: LlamaModel
let gates = ''
beforeAll(async () => {
  m32 = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
  m16 = (await loadModel(defaultModelDir(), { backend: 'wasm', kvDtype: 'float16' })) as LlamaModel
  gates = randomGatesFile(m32.config)
})

const prompt = (n: number) => [0, ...Array.from({ length: n - 1 }, (_, i) => 2 + ((i * 7919) % 4000))]

describe('whole-model decode in float16 against float32', () => {
  it('teacher-forced over float32\'s greedy tokens: logits within 2e-2 of float32\'s (scale ~10), the argmax the same at nearly every step', async () => {
    const ids = prompt(400)
    const steps = 24
    const g = await m32.generate(ids, { maxNewTokens: steps }).result
    const run = (m: LlamaModel) => {
      const c = m.newCache()
      m.prefill(ids.slice(0, -1), c)
      const out: Float32Array[] = []
      const tokens = [ids[ids.length - 1], ...g.ids.slice(0, steps - 1)]
      tokens.forEach((t, s) => {
        const o = new Float32Array(m.config.vocab)
        m.forward.step([t], Int32Array.of(ids.length - 1 + s), c, { decode: true, logits: 'last', out: o })
        out.push(o)
      })
      expect(c.options.kvDtype).toBe(m.kvDtype)
      c.dispose()
      return out
    }
    const a = run(m32)
    const b = run(m16)
    let worst = 0
    let same = 0
    const argmax = (x: Float32Array) => x.indexOf(Math.max(...x))
    a.forEach((l, s) => {
      for (let i = 0; i < l.length; i++) worst = Math.max(worst, Math.abs(l[i] - b[s][i]))
      if (argmax(l) === argmax(b[s])) same++
    })
    expect(a.map(argmax)).toEqual(g.ids)
    expect(worst).toBeLessThan(2e-2)
    expect(worst).toBeGreaterThan(0) // the pages really are float16
    expect(same).toBeGreaterThanOrEqual(steps - 2)
  })

  it('generate: kvDtype per request or per model, half the KV bytes, and nearly the same greedy text', async () => {
    const ids = prompt(300)
    const a = await m32.generate(ids, { maxNewTokens: 16 }).result
    const b = await m32.generate(ids, { maxNewTokens: 16, kvDtype: 'float16' }).result
    const c = await m16.generate(ids, { maxNewTokens: 16 }).result
    expect(b.ids).toEqual(c.ids)
    expect(b.stats.kvBytes.total * 2).toBe(a.stats.kvBytes.total)
    expect(b.stats.kvBytesFull * 2).toBe(a.stats.kvBytesFull)
    const agree = a.ids.filter((t, i) => t === b.ids[i]).length
    expect(agree).toBeGreaterThanOrEqual(14)
  })

  it('a bad kvDtype is a ModelInputError naming it, at load and at generate; a shared prefill fixes the type', async () => {
    await expect(loadModel(defaultModelDir(), { backend: 'wasm', kvDtype: 'f8' as 'float16' })).rejects.toThrow(/kvDtype .*"f8"/)
    expect(() => m32.generate(prompt(10), { kvDtype: 'half' as 'float16' })).toThrow(ModelInputError)
    const shared = await m32.prefillPrompt(prompt(50), [null], { kvDtype: 'float16' })
    expect(shared.kvDtype).toBe('float16')
    expect(() => m32.generate(prompt(50), { prefill: shared, kvDtype: 'float32' })).toThrow(/differs from the shared prefill/)
    const viaShared = await m32.generate(prompt(50), { prefill: shared, maxNewTokens: 6 }).result
    const alone = await m16.generate(prompt(50), { maxNewTokens: 6 }).result
    expect(viaShared.ids).toEqual(alone.ids)
    expect(viaShared.stats.kvBytes.total).toBe(alone.stats.kvBytes.total)
  })
})

describe('every policy with kvDtype float16', () => {
  it('every registered policy (its first grid spec) x {default budget, 25%}: runs on float16 pages with float16 byte accounting, and gives float32\'s tokens in nearly every cell', async () => {
    const ids = prompt(96)
    const { layers, kvHeads, headDim } = m16.config
    let cells = 0
    let agree = 0
    for (const specs of specsPerPolicy(gates).values()) {
      for (const base of specs.slice(0, 1)) {
        for (const spec of [base, withOption(base, 'budget=0.25')]) {
          let r16
          try {
            r16 = await m16.generate(ids, { maxNewTokens: 3, policy: spec }).result
          } catch (e) {
            // a policy without a budget option (ThinK prunes channels by ratio) runs at its default only
            if (spec !== base && /has no option "budget"/.test((e as Error).message)) continue
            throw e
          }
          const r32 = await m32.generate(ids, { maxNewTokens: 3, policy: spec }).result
          expect(r16.ids.length, spec).toBe(3)
          expect(r16.stats.kvBytesFull, spec).toBe((ids.length + 2) * layers * kvHeads * 2 * headDim * 2)
          expect(r16.stats.kvBytes.total, spec).toBeLessThanOrEqual(r16.stats.kvBytesFull)
          expect(r16.stats.kvBytes.total, spec).toBeGreaterThan(0)
          if (r16.ids.join() === r32.ids.join()) agree++
          cells++
        }
      }
    }
    expect(cells).toBeGreaterThan(35)
    expect(agree / cells).toBeGreaterThanOrEqual(0.9)
  })
})
