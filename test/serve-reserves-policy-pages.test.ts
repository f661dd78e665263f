/**
 * kvkit serve reserves a compressed request's KV in its policy's own pages: KIVI with key groups of 128
 * asks for 128-token pages (each request then holds whole ones), where the reservation counted 64-token
 * pages and a request that may grow to 129 tokens reserved 192 while it holds 256.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { ServeEngine } from '../src/serve/engine.js'
import { ApiError } from '../src/serve/errors.js'

let model: LlamaModel
let engine: ServeEngine
beforeAll(async () => {
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
  // 200 KV tokens for running requests: a 30-token prompt with 100 new tokens reserves 192 in 64-token
  // pages, 256 in 128-token pages
  engine = new ServeEngine(model, { kvBudget: 200 + 128, cacheTokens: 128, blockTokens: 16 })
})
afterAll(async () => {
  await engine.close(new Error('done'))
  model.dispose()
})

const prompt = Array.from({ length: 30 }, (_, i) => 5 + i)

describe('serve reservations in the policy\'s pages', () => {
  it.each([
    ['kivi:bits=2', null],
    ['kivi:bits=2,groupSize=64', null],
    ['kivi:bits=2,groupSize=128', 256],
    ['vidkv:groupSize=128', 256],
  ])('%s: a request that may grow to 129 tokens reserves whole pages of its own size (refused: %s)', async (kv_policy, refusedAt) => {
    expect(engine.scheduler.capacityTokens).toBe(200)
    const job = engine.completionJob({ model: engine.modelId, prompt, max_tokens: 100, kv_policy } as never)
    if (refusedAt === null) return expect(job).resolves.toBeTruthy()
    const e = await job.then(() => null, (x: unknown) => x)
    expect(e).toBeInstanceOf(ApiError)
    expect((e as ApiError).message).toContain(`may grow to ${refusedAt} KV tokens`)
  })
})
