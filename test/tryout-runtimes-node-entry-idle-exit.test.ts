import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { runtimeCommands, repoRoot as root } from './runtime-commands.js'

// README said Deno's Worker has no unref so a model must be disposed there, and that Bun and Deno use
// the global Worker; but kvkit/node starts node:worker_threads under all three runtimes, which Deno can
// unref. What README now says: through kvkit/node an undisposed model's idle pool lets the process
// exit under Node, Bun and Deno, with the same greedy tokens.
const script = fileURLToPath(new URL('./tryout-runtimes-node-entry-idle-exit.mjs', import.meta.url))

describe('kvkit/node with 2 kernel threads and the model never disposed', () => {
  const reports: Record<string, { runtime: string; threads: number; ids: number[] }> = {}
  it.each(runtimeCommands(script, ['--allow-read', '--allow-env', '--allow-sys']))('%s exits on its own', (name, bin, args) => {
    // execFileSync throws on the timeout: a pool that holds the process open fails here
    const out = execFileSync(bin, args, { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NO_COLOR: '1' } })
    const r = JSON.parse(out.trim().split('\n').pop()!)
    expect(r).toMatchObject({ runtime: name, threads: 2 })
    expect(r.ids).toHaveLength(6)
    reports[name] = r
    // greedy tokens are the same whichever runtime (and wasm build) ran them
    if (reports.node) expect(r.ids).toEqual(reports.node.ids)
  }, 70_000)
})
