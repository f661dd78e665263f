import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

// The relaxed build's integer key scoring accumulates with i32x4.relaxed_dot_i8x16_i7x16_add_s where the
// engine computes it correctly (Deno's and Bun's engines), and with i16 dots widened where it does not
// (Node 20's V8 returns twice the dot and drops the accumulator). Both are exact integer sums, so Deno's
// scores equal Node's bit for bit (both V8: the float parts around the sums lower alike); Bun's engine
// may fuse the float multiply-adds differently (relaxed_madd), so its scores agree within float32 rounding.
const root = fileURLToPath(new URL('..', import.meta.url))
const script = fileURLToPath(new URL('./runtimes-packed-int-dot-add.mjs', import.meta.url))

type Report = {
  runtime: string; build: string; dotAdd: number; stridedDotAdd: number
  scores: Record<string, number[]>; strided: Record<string, number[]>; gapsLeft: Record<string, boolean>; pieces: Record<string, number[]>
}
function run(bin: string, args: string[]): Report {
  const out = execFileSync(bin, args, { cwd: root, encoding: 'utf8', timeout: 90_000, env: { ...process.env, NO_COLOR: '1' } })
  return JSON.parse(out.trim().split('\n').pop()!)
}
const floats = (bits: number[]) => new Float32Array(new Uint32Array(bits).buffer)

// one run of the script per runtime, shared by the tests
let reports: Promise<[Report, Report, Report]> | undefined
const runAll = () =>
  (reports ??= Promise.resolve([
    run(process.execPath, ['--experimental-wasm-relaxed-simd', script]),
    run(`${root}node_modules/.bin/deno`, ['run', '--allow-read', '--no-prompt', script]),
    run(`${root}node_modules/.bin/bun`, [script]),
  ]))

describe('integer key scoring with the accumulating relaxed dot product', () => {
  it('Deno and Bun take it, and the scores are the same sums whichever dot product ran, in key groups of 32, 64 and 128', async () => {
    const [node, deno, bun] = await runAll()
    for (const r of [node, deno, bun]) expect(r.build, r.runtime).toBe('relaxed')
    expect(deno.dotAdd).toBe(1)
    expect(bun.dotAdd).toBe(1)
    // a Node whose V8 computes it correctly takes it too; the scores must not depend on which ran
    const keys = Object.keys(node.scores)
    // 9 cases in each key group of 32, 64 and 128 tokens
    expect(keys).toHaveLength(27)
    for (const k of keys) {
      expect(deno.scores[k], `${k}: Deno against Node`).toEqual(node.scores[k])
      const a = floats(node.scores[k]), b = floats(bun.scores[k])
      expect(b.length, k).toBe(a.length)
      a.forEach((x, i) => expect(Math.abs(x - b[i]), `${k}[${i}]: Bun against Node`).toBeLessThanOrEqual(4e-6 * Math.max(1, Math.abs(x))))
    }
  }, 120_000)

  // scorePackedKeysIntStrided is what a kernel thread runs for its piece of the keys (threads/scoring.ts);
  // on Node 20 it takes the widened-i16 path, so only Deno and Bun run its accumulating-dot stores with a
  // stride: each head's row past n, and pieces of 32 keys writing into rows of n
  it('the strided entry takes it under Deno and Bun, and its rows and pieces are the unstrided scores bit for bit', async () => {
    const [node, deno, bun] = await runAll()
    expect(deno.stridedDotAdd).toBe(1)
    expect(bun.stridedDotAdd).toBe(1)
    for (const r of [node, deno, bun]) {
      // the strided entry reads groups of 32 (groups of 64 and 128 have their own export)
      const keys = Object.keys(r.scores).filter((k) => !k.startsWith('group'))
      expect(keys).toHaveLength(9)
      expect(Object.keys(r.strided).sort(), r.runtime).toEqual([...keys].sort())
      for (const k of keys) {
        expect(r.strided[k], `${r.runtime} ${k}: rows at a stride`).toEqual(r.scores[k])
        expect(r.gapsLeft[k], `${r.runtime} ${k}: the words between the rows left alone`).toBe(true)
        expect(r.pieces[k], `${r.runtime} ${k}: pieces of 32 keys`).toEqual(r.scores[k])
      }
    }
    // and against the same reference as the unstrided scores: Deno's strided rows are Node's scores
    for (const k of Object.keys(node.strided)) expect(deno.strided[k], `${k}: Deno strided against Node`).toEqual(node.scores[k])
  }, 120_000)
})
