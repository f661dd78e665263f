/**
 * Identical inputs and the query-agnostic loop: `--prompts FILE` (a JSONL of samples: task, prompt ids,
 * answer, where the question starts) and `--question after` (generate's contextTokens: the context is
 * compressed alone, the question prefilled on the compressed cache, the answer decoded).
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defaultModelDir } from '../src/eval/paths.js'
import { readPromptsFile, writePromptsFile, PromptsFileError, type PromptSample } from '../src/eval/prompts-file.js'
import { evaluate, planEvaluation, EvalArgumentError } from '../src/eval/runner.js'
import { EvalSession } from '../src/eval/session.js'
import { createPolicy } from '../src/policies/registry.js'
import type { Policy } from '../src/policies/types.js'
import { statelessPolicy } from '../src/policies/stateless.js'
import { ModelInputError } from '../src/model/errors.js'

const dir = mkdtempSync(join(tmpdir(), 'kvkit-prompts-'))
const VOCAB = 4096

describe('prompts file', () => {
  let session: EvalSession
  let samples: PromptSample[]
  const file = join(dir, 'p.jsonl')
  beforeAll(async () => {
    session = await EvalSession.open({ model: defaultModelDir(), backend: 'wasm' })
    samples = [session.sample('passkey', 512, 1, 0), session.sample('vt', 512, 1, 0)]
    writePromptsFile(file, samples)
  }, 120_000)
  afterAll(() => session?.dispose())

  it('round-trips the samples the eval builds; the context ends where the question block starts', () => {
    expect(readPromptsFile(file, VOCAB)).toEqual(samples)
    const ids = samples[0].prompt_ids
    expect(session.model.tokenizer.decode(ids.slice(samples[0].context_len))).toBe('\n\nQuestion: What is the pass key?\nAnswer:')
  })

  it('names the line and the bad field of a malformed file', () => {
    const good = JSON.stringify(samples[0])
    const cases: [string, RegExp][] = [
      ['{not json', /p2\.jsonl:1: not a JSON object/],
      [`${good}\n${JSON.stringify({ ...samples[0], task: 'needle' })}`, /:2: task "needle" is not one of/],
      [JSON.stringify({ ...samples[0], prompt_ids: [1, VOCAB] }), /:1: prompt_ids must be a non-empty list of token ids in \[0, 4096\)/],
      [JSON.stringify({ ...samples[0], context_len: samples[0].prompt_ids.length }), /:1: context_len \d+ must be an integer in \[1, \d+\]/],
      [JSON.stringify({ ...samples[0], answer: '' }), /:1: answer must be a non-empty string/],
      ['\n\n', /no samples/],
    ]
    for (const [text, msg] of cases) {
      writeFileSync(join(dir, 'p2.jsonl'), text)
      expect(() => readPromptsFile(join(dir, 'p2.jsonl'), VOCAB)).toThrow(PromptsFileError)
      expect(() => readPromptsFile(join(dir, 'p2.jsonl'), VOCAB)).toThrow(msg)
    }
    expect(() => readPromptsFile(join(dir, 'missing.jsonl'), VOCAB)).toThrow(/cannot read prompts file/)
  })

  it('plans one job per policy and sample of the file, carrying the sample; other sample choices are refused', () => {
    const { jobs, cells } = planEvaluation({ model: defaultModelDir(), policies: ['full', 'lagkv'], tasks: [], lengths: [], samples: 0, prompts: file, question: 'after' })
    expect(cells.map((c) => `${c.policy}/${c.task}/${c.length}`)).toEqual(['full/passkey/512', 'full/vt/512', 'lagkv/passkey/512', 'lagkv/vt/512'])
    // one job per sample, carrying every policy
    expect(jobs.map((j) => j.sample)).toEqual([samples[0], samples[1]])
    expect(jobs.every((j) => j.policies.join() === 'full,lagkv')).toBe(true)
    expect(jobs.every((j) => j.question === 'after')).toBe(true)
    const bad = () => planEvaluation({ model: defaultModelDir(), policies: ['full'], tasks: ['passkey'], lengths: [], samples: 0, prompts: file })
    expect(bad).toThrow(EvalArgumentError)
    expect(bad).toThrow(/--prompts gives the samples/)
    expect(() => planEvaluation({ model: defaultModelDir(), policies: ['full'], tasks: ['passkey'], lengths: [512], samples: 1, question: 'sideways' as 'after' })).toThrow(/question must be "with" or "after", got "sideways"/)
  })

  it('question after: the policy sees the context alone, the question tokens are then held uncompressed', async () => {
    const s = samples[0]
    const n = s.prompt_ids.length
    const inner = createPolicy('snapkv:budget=0.5,window=8', session.model.config) as Policy
    const seen: { held: number; promptLength: number; promptAfter?: number }[] = []
    const spy = statelessPolicy({ name: 'spy', needs: inner.needs, onPrefillEnd(ctx) {
      seen.push({ held: ctx.cache.length(0, 0), promptLength: ctx.promptLength, promptAfter: ctx.promptAfter })
      return inner.start().onPrefillEnd!(ctx)
    } })
    const r = await session.model.generate(s.prompt_ids, { policy: spy, maxNewTokens: 1, contextTokens: s.context_len }).result
    // the hint: the question's tokens but the last (the first decode step's) come after compression
    expect(seen).toEqual([{ held: s.context_len, promptLength: s.context_len + 1, promptAfter: n - 1 - s.context_len }])
    expect(n - 1 - s.context_len).toBeGreaterThan(0)
    // the question in the prompt: nothing follows the compression but the last token
    await session.model.generate(s.prompt_ids, { policy: spy, maxNewTokens: 1 }).result
    expect(seen[1]).toEqual({ held: n - 1, promptLength: n, promptAfter: 0 })
    const perToken = r.stats.kvBytesFull / n // n - 1 prefilled tokens and one decode step
    // half the context kept, every question token but the last added after compression
    expect(r.stats.kvBytesAfterPrefill.hot / perToken).toBe(Math.floor(0.5 * s.context_len) + (n - 1 - s.context_len))
  })

  it('contextTokens outside [1, prompt length - 1] is refused before any work, naming the value', () => {
    const ids = samples[0].prompt_ids
    for (const c of [0, ids.length, 2.5]) expect(() => session.model.generate(ids, { contextTokens: c })).toThrow(ModelInputError)
    expect(() => session.model.generate(ids, { contextTokens: ids.length })).toThrow(new RegExp(`contextTokens must be an integer in \\[1, ${ids.length - 1}\\].*got ${ids.length}`))
  })

  it('evaluate() runs the file\'s samples in both loops; the full cache answers alike in both', async () => {
    const run = (question: 'with' | 'after') => evaluate({ model: defaultModelDir(), policies: ['full', 'lagkv:budget=0.5,lag=32'], tasks: [], lengths: [], samples: 0, prompts: file, question, workers: 1, backend: 'wasm' })
    const withQ = await run('with')
    const after = await run('after')
    expect(withQ.map((r) => [r.policy, r.task, r.samples])).toEqual([['full', 'passkey', 1], ['full', 'vt', 1], ['lagkv:budget=0.5,lag=32', 'passkey', 1], ['lagkv:budget=0.5,lag=32', 'vt', 1]])
    expect(after.slice(0, 2).map((r) => r.accuracy)).toEqual(withQ.slice(0, 2).map((r) => r.accuracy))
    // compressing without the question holds the question's tokens whole: more bytes than compressing them too
    expect(after[2].kvBytes).toBeGreaterThan(withQ[2].kvBytes)
  }, 300_000)
})
