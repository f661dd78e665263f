import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

// kvkit serve's fetch handler (serveHandler, from the built dist/: `npm run build:ts`) on Deno.serve and
// Bun.serve: the OpenAI routes answer as under Node (the greedy answer of model.generate, whole and
// streamed, a 401 without the key), and a client that leaves mid-stream aborts its generation and frees
// its reservation, through the request's signal each runtime aborts.
const root = fileURLToPath(new URL('..', import.meta.url))
const script = fileURLToPath(new URL('./runtimes-serve-handler.mjs', import.meta.url))
const runtimes: [string, string, string[]][] = [
  ['bun', `${root}node_modules/.bin/bun`, [script]],
  ['deno', `${root}node_modules/.bin/deno`, ['run', '--allow-read', '--allow-net=127.0.0.1', '--allow-env', '--no-prompt', script]],
]

describe('serveHandler on the runtime\'s own server', () => {
  it.each(runtimes)('%s: answers as model.generate, refuses a missing key, and aborts a request whose client left', async (name, bin, args) => {
    const { stdout } = await promisify(execFile)(bin, args, { cwd: root, encoding: 'utf8', timeout: 120_000, env: { ...process.env, NO_COLOR: '1' } })
    const out = JSON.parse(stdout.trim().split('\n').pop()!)
    expect(out.runtime).toBe(name)
    expect(out.alone.length).toBeGreaterThan(0)
    expect(out.whole).toBe(out.alone)
    expect(out.streamed).toBe(out.alone)
    expect(out.last).toBe('data: [DONE]')
    expect(out.unauthorized).toBe(401)
    expect(out.afterLeave).toEqual({ running: 0, reserved: 0, ends: ['length', 'length', 'AbortError: the client disconnected'] })
  }, 150_000)
})
