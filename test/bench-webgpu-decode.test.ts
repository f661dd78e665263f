import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { exactLengthPrompt } from '../bench/exact-prompt.js'
import { main, promptSha256, type DecodeReport } from '../bench/webgpu-decode.js'
import { DEFAULT_POLICIES, DecodeBenchArgumentError, parseDecodeBenchArgs, splitPolicyList } from '../bench/webgpu-decode-options.js'
import { PromptBuilder } from '../src/eval/prompt.js'
import { loadBooks } from '../src/eval/text.js'
import { loadWordList } from '../src/eval/words.js'
import { defaultBooksDir, defaultModelDir, defaultWordsFile } from '../src/eval/paths.js'
import type { TaskName } from '../src/eval/tasks.js'
import { loadModel } from '../src/node/load.js'
import { fixtureTokenizer } from './eval-helpers.js'
import { testGpu } from './webgpu-helpers.js'

const parse = (argv: string[]) => parseDecodeBenchArgs(argv, 'models/fixture-14m')

describe('bench/webgpu-decode arguments', () => {
  it('default to the issue 13 figure: 4096 and 8192 tokens, 64 steps, full / UnionKV / TokenSelect, 3 runs', () => {
    expect(parse([])).toMatchObject({ backend: 'wasm', lengths: [4096, 8192], newTokens: 64, policies: DEFAULT_POLICIES, runs: 3, task: 'passkey', idsOnly: false })
    expect(parse(['--backend', 'webgpu', '--lengths', '300,600', '--new', '8', '--runs', '5', '--chunk', '512']))
      .toMatchObject({ backend: 'webgpu', lengths: [300, 600], newTokens: 8, runs: 5, chunk: 512 })
    expect(parse([]).chunk).toBeUndefined()
    expect(parse([]).kvDtype).toBe('float32')
    expect(parse(['--kv-dtype', 'float16']).kvDtype).toBe('float16')
  })

  const bad: [string[], RegExp][] = [
    [['--backend', 'cuda'], /--backend: "cuda"/],
    [['--lengths', '4096,abc'], /--lengths: "abc"/],
    [['--lengths', '100'], /--lengths: "100" is not an integer in \[256/],
    [['--lengths', '4096,'], /--lengths: ""/],
    [['--lengths', '4096,4096'], /names a length twice/],
    [['--new', '0'], /--new: "0"/],
    [['--new', '1.5'], /--new: "1.5"/],
    [['--runs', '0'], /--runs: "0"/],
    [['--seed=-1'], /--seed: "-1"/],
    [['--threads', '0'], /--threads: "0"/],
    [['--chunk', '4097'], /--chunk: "4097"/],
    [['--kv-dtype', 'f8'], /--kv-dtype: "f8" is not one of float32, float16/],
    [['--task', 'haystack'], /--task: "haystack" is not one of passkey/],
    [['--policies', 'full,nosuch'], /--policies: "nosuch"/],
    [['--policies', 'full,,unionkv'], /empty spec/],
    [['--policies', 'full,full'], /names a policy twice/],
    [['--policies', 'unionkv:budget'], /--policies: "unionkv:budget"/],
    [['--ids-only'], /--ids-only .* --ids-out/],
    [['--json', ' '], /--json: empty path/],
    [['--bogus', '1'], /bogus/],
    [['4096'], /4096/],
  ]
  for (const [argv, message] of bad) {
    it(`refuse ${argv.join(' ')} with an error naming the value`, () => {
      expect(() => parse(argv)).toThrow(DecodeBenchArgumentError)
      expect(() => parse(argv)).toThrow(message)
    })
  }

  it('split a comma-separated policy list whose specs have comma-separated options', () => {
    const cases: [string, string[]][] = [
      ['full', ['full']],
      ['full,unionkv:budget=0.25,tokenselect:tokens=512,first=32,last=64', ['full', 'unionkv:budget=0.25', 'tokenselect:tokens=512,first=32,last=64']],
      ['knorm,snapkv:budget=0.25,window=32+think:ratio=0.4,full', ['knorm', 'snapkv:budget=0.25,window=32+think:ratio=0.4', 'full']],
      ['knorm+think:ratio=0.4,h2o', ['knorm+think:ratio=0.4', 'h2o']],
    ]
    for (const [raw, specs] of cases) expect(splitPolicyList(raw)).toEqual(specs)
  })

  it("refuse a policy option the model's shape rejects before loading the weights", async () => {
    await expect(main(['--policies', 'full,unionkv:budget=2', '--lengths', '300'])).rejects.toThrow(/--policies: "unionkv:budget=2": .*budget/)
  })
})

describe('prompts of exactly the length from the eval task prompts', () => {
  const builder = new PromptBuilder({ tokenizer: fixtureTokenizer(), bosId: 0, books: loadBooks(defaultBooksDir()), words: loadWordList(defaultWordsFile()) })
  const tasks: TaskName[] = ['passkey', 'niah_single', 'vt', 'kv']
  for (const length of [512, 1000, 4096]) {
    it(`keep the sample's context and question and fill ${length} tokens with the next samples' haystack`, () => {
      for (const task of tasks) {
        const ids = exactLengthPrompt(builder, task, length, 1)
        expect(ids.length).toBe(length)
        const s = builder.build(task, length, 1, 0)
        const question = s.pieces[s.pieces.length - 1].ids
        const context = s.promptIds.slice(0, s.promptIds.length - question.length)
        expect(ids[0]).toBe(0)
        expect(ids.slice(0, context.length)).toEqual(context)
        expect(ids.slice(length - question.length)).toEqual(question)
        // the gap: the start of the next sample's haystack sentences, in order
        const next = builder.build(task, length, 1, 1).pieces.filter((p) => p.kind === 'sentence').flatMap((p) => p.ids)
        expect(ids.slice(context.length, length - question.length)).toEqual(next.slice(0, length - s.promptIds.length))
      }
    })
  }
})

describe('bench/webgpu-decode end to end on wasm', () => {
  it('runs every step past the end token and gives the greedy ids of a plain prefill + step loop', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvkit-decode-'))
    const steps = 16
    const report = (await main(['--backend', 'wasm', '--lengths', '300', '--new', String(steps), '--runs', '1', '--threads', '1',
      '--policies', 'full,unionkv:budget=0.25', '--ids-out', join(dir, 'ids.json'), '--json', join(dir, 'out.json')])) as DecodeReport
    const written = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8')) as DecodeReport
    expect(written.rows).toEqual(report.rows)
    const ids = (JSON.parse(readFileSync(join(dir, 'ids.json'), 'utf8')) as { prompts: { length: number; ids: number[] }[] }).prompts[0].ids
    expect(ids.length).toBe(300)
    expect(report.promptSha256[300]).toBe(promptSha256(ids))
    expect(report.chunk).toBe(128) // the model's default prefill chunk, without --chunk
    expect(report.rows.map((r) => [r.length, r.policy, r.ids.length, r.finishReason])).toEqual([[300, 'full', steps, 'length'], [300, 'unionkv:budget=0.25', steps, 'length']])
    // the reference: the unmodified model, prefill ids[0 .. n-1), then argmax steps from ids[n-1] (tools/pytorch-gpu-decode.py's protocol)
    const model = await loadModel(defaultModelDir(), { threads: 1 })
    try {
      const cache = model.newCache()
      const logits = new Float32Array(model.config.vocab)
      model.prefill(ids.slice(0, -1), cache)
      const want: number[] = []
      for (let s = 0, next = ids[ids.length - 1]; s < steps; s++) {
        model.forward.step([next], Int32Array.of(ids.length - 1 + s), cache, { decode: true, logits: 'last', out: logits })
        next = logits.indexOf(Math.max(...logits))
        want.push(next)
      }
      cache.dispose()
      expect(report.rows[0].ids).toEqual(want)
      // and the unmodified model's generate stops at its end token inside those steps: the bench went past it
      const plain = await model.generate(ids, { maxNewTokens: steps }).result
      expect(plain.finishReason).toBe('eos')
      expect(want.slice(0, plain.ids.length)).toEqual(plain.ids)
      expect(model.config.eosTokenIds).toContain(want[plain.ids.length])
    } finally {
      model.dispose()
    }
  })
})

const probe = await testGpu()
probe?.destroy()
describe.skipIf(!probe)('bench/webgpu-decode on WebGPU (lavapipe on CI)', () => {
  it('runs TokenSelect wholly on the GPU (no step with its cache half on the CPU) with the greedy ids of wasm', async () => {
    // the shortest prompt the bench takes and one policy: lavapipe prefills slowly
    const args = ['--lengths', '256', '--new', '3', '--runs', '1', '--threads', '1', '--policies', 'tokenselect:tokens=64,first=4,last=16']
    const gpu = (await main(['--backend', 'webgpu', ...args])) as DecodeReport
    const wasm = (await main(['--backend', 'wasm', ...args])) as DecodeReport
    expect(gpu.rows[0].cpuAttentionSteps).toBe(0)
    expect(wasm.rows[0].cpuAttentionSteps).toBeNull()
    expect(gpu.rows[0].ids).toEqual(wasm.rows[0].ids)
    expect(gpu.rows[0].policyStats).toEqual(wasm.rows[0].policyStats)
    // every decode step looks up every layer of the fixture (8)
    expect(gpu.rows[0].policyStats!.cacheLookups).toBe(3 * 8)
  }, 600_000)
})

// the PyTorch side's check, without torch (its import is deferred until a model runs)
const python = spawnSync('python3', ['--version']).status === 0
describe.skipIf(!python)('tools/pytorch-gpu-decode.py greedy-id check', () => {
  const check = (cases: unknown) => {
    const code = `import importlib.util, json, sys
spec = importlib.util.spec_from_file_location('m', 'tools/pytorch-gpu-decode.py'); m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
print(json.dumps([m.compare(*c) for c in json.loads(sys.argv[1])]))`
    const r = spawnSync('python3', ['-c', code, JSON.stringify(cases)], { encoding: 'utf8' })
    expect(r.stderr).toBe('')
    return JSON.parse(r.stdout) as { status: string; firstDifference: number | null; margin?: number; gap?: number }[]
  }

  it('calls a flip by less than 1e-3 of the top logit rounding, a larger one a difference, and reports the step', () => {
    const logits = [[0, 1, 2, 3], [9, 20, 20 - 0.019, 1]]
    const [same, rounding, differ, shorter] = check([
      [[3, 1], logits, [3, 1]],
      [[3, 1], logits, [3, 2]],
      [[3, 1], logits, [3, 0]],
      [[3, 1], logits, [3]],
    ])
    expect(same).toMatchObject({ status: 'match', firstDifference: null })
    expect(rounding).toMatchObject({ status: 'rounding flip', firstDifference: 1 })
    expect(rounding.margin).toBeCloseTo(0.019, 9)
    expect(differ).toMatchObject({ status: 'DIFFER', firstDifference: 1 })
    expect(differ.margin).toBeCloseTo(0.019, 9)
    expect(differ.gap).toBeCloseTo(11, 9)
    expect(shorter).toMatchObject({ status: 'match', stepsCompared: 1 })
  })

  it('refuses bad arguments with exit status 2 and the value named', () => {
    const r = spawnSync('python3', ['tools/pytorch-gpu-decode.py', '--ids', 'x.json', '--lengths', '4096,a'], { encoding: 'utf8' })
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/--lengths: '4096,a'/)
  })
})
