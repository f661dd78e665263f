import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { runtimeCommands, repoRoot as root } from './runtime-commands.js'
import { describe, expect, it } from 'vitest'

// TokenSelect over KIVI keys scores the packed codes with the integer kernel (src/policies/segment-scores.ts).
// The relaxed build rounds the query to int8 for int2 keys where the plain build keeps int16, so the two
// builds may select differently on a near tie; within a build, Deno's and Bun's accumulating relaxed dot
// and Node's i16 dots are the same integer sums, so each build's greedy tokens agree across runtimes.
const script = fileURLToPath(new URL('./tryout-runtimes-selection-packed-keys.mjs', import.meta.url))
const [node, ...others] = runtimeCommands(script, ['--allow-read'])
node[2].unshift('--experimental-wasm-relaxed-simd')

type Report = { runtime: string } & Record<'simd' | 'relaxed', { ids: number[]; calls: number; dotAdd: number }>
function run([, bin, args]: [string, string, string[]]): Report {
  const out = execFileSync(bin, args, { cwd: root, encoding: 'utf8', timeout: 90_000, env: { ...process.env, NO_COLOR: '1' } })
  return JSON.parse(out.trim().split('\n').pop()!)
}

describe('selection over KIVI int2 keys under Node, Bun and Deno', () => {
  it('each wasm build gives the same greedy tokens in every runtime, scored by the integer kernel', () => {
    const reports = [node, ...others].map(run)
    expect(reports.map((r) => r.runtime)).toEqual(['node', 'bun', 'deno'])
    for (const r of reports) {
      for (const build of ['simd', 'relaxed'] as const) {
        expect(r[build].ids, `${r.runtime} ${build}`).toHaveLength(8)
        expect(r[build].calls, `${r.runtime} ${build}: integer kernel calls`).toBeGreaterThan(0)
        expect(r[build].ids, `${r.runtime} ${build} against Node`).toEqual(reports[0][build].ids)
      }
      expect(r.simd.dotAdd).toBe(0)
    }
    // Deno's and Bun's engines compute the accumulating dot correctly: it ran in generate
    for (const r of reports.slice(1)) expect(r.relaxed.dotAdd, r.runtime).toBe(1)
  }, 120_000)
})
