/**
 * KVzip's context reconstruction (one more forward pass over the prompt at prefill end, its scoring
 * per layer) ran synchronously inside onPrefillEnd: an abort during it was seen only once the whole
 * compression was done (a 3000-token prompt aborted 5.7 s in still completed at ~17 s) and timers
 * stalled for its whole length. Its session now has onPrefillEndAsync, which awaits runtime.pause()
 * before each pass, between the pass's forward chunks and between the layers it scores: timers run there, and an aborted signal rejects
 * the generation there with its reason, as an abort between prefill chunks does. The kept sets and
 * tokens are main's (digests below, made by main's build at 76d80b8 on this prompt, fixture model, one thread, no relaxed SIMD).
 */
import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LlamaModel } from '../src/model/model.js'
import { loadModel } from '../src/node/load.js'
import { createPolicy } from '../src/policies/registry.js'
import type { Policy, PolicyContext, PolicyRuntime } from '../src/policies/types.js'
import { fixturePrompt } from './threads-helpers.js'

const PROMPT = fixturePrompt(160)
/** chunk=48 over 159 prompt tokens: four reconstruction passes */
const PASSES = 4

/** main's tokens and a digest of its kept positions at prefill end, per spec, for PROMPT and 8 new tokens */
const MAIN: Record<string, { ids: number[]; text: string; kept: string }> = {
  'kvzip:budget=0.4,chunk=48': { ids: [618, 15, 200, 200, 530, 314, 438, 262], text: 'ars.\n\nThese are the', kept: '42d36b153a71b892' },
  'kvzip:budget=0.4,chunk=48,plus=true,layerwise=true': { ids: [292, 545, 15, 200, 200, 530, 314, 438], text: 'arable.\n\nThese are', kept: 'fbe9246efb99566b' },
  'kvzip:budget=0.4,chunk=48+kivi:bits=4': { ids: [618, 15, 200, 200, 530, 314, 438, 262], text: 'ars.\n\nThese are the', kept: '42d36b153a71b892' },
  // one pass of 159 context tokens and its lead, over two forward chunks of 128 (a turn between them)
  'kvzip:budget=0.4': { ids: [618, 15, 200, 200, 530, 314, 438, 262], text: 'ars.\n\nThese are the', kept: '990c9de48af31af0' },
  'kvzip:budget=0.3,plus=true': { ids: [66, 13, 281, 262, 1544, 1505, 278, 262], text: 'a, and the elector of the', kept: 'bb9f82f7391a3f06' },
}

/** the policy with `onPass(pass)` called as each reconstruction pass (the runtime's extend) starts */
function watched(policy: Policy, onPass: (pass: number) => void): Policy {
  let passes = 0
  const wrap = (ctx: PolicyContext): PolicyContext => {
    const rt = ctx.runtime!
    const runtime: PolicyRuntime = Object.assign(Object.create(rt) as PolicyRuntime, {
      extendAsync: (...a: Parameters<PolicyRuntime['extendAsync']>) => {
        onPass(++passes)
        return rt.extendAsync(...a)
      },
    })
    return { ...ctx, runtime }
  }
  return {
    ...policy,
    start() {
      const s = policy.start()
      // whichever the session has (a build whose KVzip is synchronous has onPrefillEnd)
      return s.onPrefillEndAsync
        ? { ...s, onPrefillEndAsync: (ctx: PolicyContext) => s.onPrefillEndAsync!(wrap(ctx)) }
        : { ...s, onPrefillEnd: (ctx: PolicyContext) => s.onPrefillEnd!(wrap(ctx)) }
    },
  }
}

describe('KVzip\'s reconstruction yields the event loop and sees an abort', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = (await loadModel('models/fixture-14m', { backend: 'wasm', threads: 1, wasm: { relaxed: false } })) as LlamaModel
  })
  afterAll(() => model?.dispose())

  it.each(['kvzip:budget=0.4,chunk=48', 'kvzip:budget=0.4,chunk=48+kivi:bits=4'])('%s: an abort during the first pass rejects with its reason before the second pass, and frees what it held', async (spec) => {
    const live = model.backend.heap.bytesLive
    const ac = new AbortController()
    const reason = new Error('stop')
    const started: number[] = []
    // aborted on the turn after the first pass began: the pass's scoring yields there
    const policy = watched(createPolicy(spec, model.config)!, (p) => {
      started.push(p)
      if (p === 1) setImmediate(() => ac.abort(reason))
    })
    const error = await model.generate(PROMPT, { maxNewTokens: 8, policy, signal: ac.signal }).result.then(() => 'finished', (e: unknown) => e)
    expect(error).toBe(reason)
    expect(started).toEqual([1])
    expect(model.backend.heap.bytesLive).toBe(live)
  })

  it('an abort without a reason rejects with an AbortError in the pass it came in, as an abort between prefill chunks', async () => {
    const ac = new AbortController()
    let passes = 0
    const policy = watched(createPolicy('kvzip:budget=0.4,chunk=48', model.config)!, (p) => {
      passes = p
      setImmediate(() => ac.abort())
    })
    const error = await model.generate(PROMPT, { maxNewTokens: 8, policy, signal: ac.signal }).result.then(() => null, (e: unknown) => e)
    expect(passes).toBe(1)
    expect(error).toBeInstanceOf(DOMException)
    expect((error as DOMException).name).toBe('AbortError')
  })

  it('timers fire between the reconstruction passes', async () => {
    let ticks = 0
    const seen: number[] = []
    const timer = setInterval(() => ticks++, 0)
    try {
      const policy = watched(createPolicy('kvzip:budget=0.4,chunk=48', model.config)!, () => seen.push(ticks))
      await model.generate(PROMPT, { maxNewTokens: 2, policy }).result
    } finally {
      clearInterval(timer)
    }
    expect(seen).toHaveLength(PASSES)
    for (let i = 1; i < PASSES; i++) expect(seen[i]).toBeGreaterThan(seen[i - 1])
  })

  it.each(Object.keys(MAIN))('%s keeps the tokens main kept and generates main\'s tokens', async (spec) => {
    let kept = ''
    const r = await model.generate(PROMPT, {
      maxNewTokens: 8, policy: createPolicy(spec, model.config)!,
      onKept: (k) => {
        if (k.stage === 'prefill') kept = createHash('sha256').update(JSON.stringify(k.kept.map((l) => l.map((h) => Array.from(h))))).digest('hex').slice(0, 16)
      },
    }).result
    expect({ ids: r.ids, text: r.text, kept }).toEqual(MAIN[spec])
  })

  it('a composition is asynchronous at prefill end only where a part is', () => {
    const withKvzip = createPolicy('kvzip:budget=0.4+kivi:bits=4', model.config)!.start()
    expect(withKvzip.onPrefillEndAsync).toBeTypeOf('function')
    expect(withKvzip.onPrefillEnd).toBeUndefined()
    const sync = createPolicy('snapkv:budget=0.4+kivi:bits=4', model.config)!.start()
    expect(sync.onPrefillEnd).toBeTypeOf('function')
    expect(sync.onPrefillEndAsync).toBeUndefined()
  })
})
