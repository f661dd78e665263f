import { execFile } from 'node:child_process'
import { mkdtempSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { serveStatic } from './static-server.js'
import { passkeySample } from './fixture-passkey.js'
import { loadModel } from '../src/node/load.js'
import type { TaskSample } from '../src/eval/prompt.js'

// The built root entry (dist/, `npm run build`) under each runtime: load by URL from a local server, generate.
const root = fileURLToPath(new URL('..', import.meta.url))
const script = fileURLToPath(new URL('./runtimes-load-url.mjs', import.meta.url))
const RECOMMENDED = { budget: 0.5 }
const runtimes: [string, string, string[]][] = [
  ['node', process.execPath, [script]],
  ['bun', `${root}node_modules/.bin/bun`, [script]],
  ['deno', `${root}node_modules/.bin/deno`, ['run', '--allow-read', '--allow-net=127.0.0.1', '--no-prompt', script]],
]

let server: Awaited<ReturnType<typeof serveStatic>>
let sample: TaskSample
let inputFile: string
beforeAll(async () => {
  server = await serveStatic({ '/org/fixture-14m/resolve/main/': 'models/fixture-14m' })
  const model = await loadModel('models/fixture-14m', { backend: 'reference' })
  sample = passkeySample(model)
  model.dispose()
  inputFile = join(mkdtempSync(join(tmpdir(), 'kvkit-rt-')), 'input.json')
  writeFileSync(inputFile, JSON.stringify({ ids: sample.promptIds, maxNewTokens: sample.answerIds.length + 3, policy: RECOMMENDED }))
})
afterAll(() => server?.close())

describe('load by URL (and from the folder) and generate under Node, Bun and Deno', () => {
  it.each(runtimes)('%s loads the fixture from a hub-style URL with progress and answers the passkey with a typed policy', async (name, bin, args) => {
    const { stdout } = await promisify(execFile)(bin, [...args, `${server.url}/org/fixture-14m/resolve/main/`, inputFile], { cwd: root, encoding: 'utf8', timeout: 120_000, env: { ...process.env, NO_COLOR: '1' } })
    const out = JSON.parse(stdout.trim().split('\n').pop()!)
    expect(out.runtime).toBe(name)
    expect(out.backend).toBe('wasm')
    expect(out.text.startsWith(sample.answer), out.text).toBe(true)
    expect(out.fromFolder).toBe(out.text)
    expect(out.kv).toBeLessThan(0.6 * out.kvFull)
    for (const f of ['config.json', 'tokenizer.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) {
      const size = statSync(join('models/fixture-14m', f)).size
      expect(out.progress[f], f).toEqual([size, size])
    }
  }, 150_000)
})
