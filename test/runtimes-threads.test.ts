import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

// The built package's kernel threads under each runtime: workers from the global Worker (Bun, Deno) or
// Node's worker threads (kvkit/node), on the shared arena, give the one-thread outputs bit for bit.
const root = fileURLToPath(new URL('..', import.meta.url))
const script = fileURLToPath(new URL('./runtimes-threads.mjs', import.meta.url))
const runtimes: [string, string, string[]][] = [
  ['node', process.execPath, [script]],
  ['bun', `${root}node_modules/.bin/bun`, [script]],
  ['deno', `${root}node_modules/.bin/deno`, ['run', '--allow-read', '--no-prompt', script]],
]

describe('kernel threads under Node, Bun and Deno', () => {
  it.each(runtimes)('%s runs 2 threads on a shared arena, identical to one thread, both builds', (name, bin, args) => {
    const out = execFileSync(bin, args, { cwd: root, encoding: 'utf8', timeout: 90_000, env: { ...process.env, NO_COLOR: '1' } })
    const report = JSON.parse(out.trim().split('\n').pop()!)
    expect(report.runtime).toBe(name)
    for (const b of [report.builds.plainRequested, report.builds.relaxedRequested]) {
      expect(b.threads).toBe(2)
      expect(b.shared).toBe(true)
      expect(b.identical).toBe(true)
    }
    if (name !== 'node') expect(report.builds.relaxedRequested.build).toBe('relaxed')
  })
})

describe('an idle kernel pool does not keep the process alive', () => {
  const idle = fileURLToPath(new URL('./runtimes-idle-pool.mjs', import.meta.url))
  // Deno's Worker has no unref (2.x): there the backend must be closed, as README's threads section says
  const unrefable = runtimes.filter(([name]) => name !== 'deno')
  it.each(unrefable.map(([name, bin, args]) => [name, bin, [...args.slice(0, -1), idle]] as [string, string, string[]]))(
    '%s exits after a script that used 2 threads and never closed its backend',
    (name, bin, args) => {
      // before the fix, Node's process stayed alive forever here (a 'message' listener refs the worker)
      const out = execFileSync(bin, args, { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NO_COLOR: '1' } })
      const report = JSON.parse(out.trim().split('\n').pop()!)
      expect(report).toMatchObject({ runtime: name, threads: 2 })
      // y[0][0] = x row 0 (j % 7 - 3) . w row 0 (j % 5 - 2): small integers, exact in float32
      let y0 = 0
      for (let j = 0; j < 96; j++) y0 += ((j % 7) - 3) * ((j % 5) - 2)
      expect(report.y0).toBe(y0)
    },
  )
})
