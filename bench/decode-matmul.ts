// One decode step's linear layers on the fixture's shapes (8 layers of q/k/v 384 -> 1152, o 384 -> 384,
// gate+up 384 -> 2048, down 1024 -> 384, then the LM head 384 -> 4096: 60 MiB of float32 weights, one
// token), against memory.copy of the same bytes in the same process: decode streams every weight once a
// token, so memory.copy's speed is the limit. With --baseline DIR (a build/ folder of another checkout)
// the same matmuls on its kvkit.wasm alternate with this build's, and the outputs are checked bit-equal.
// Fastest of `rounds` alternating rounds each (preemption only adds time).
//   npm run build && node dist/bench/decode-matmul.js [--rounds 40] [--baseline DIR]
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { createBackend, kernelBuild, type CreatedBackend } from '../src/backend/index.js'

const SHAPES: [number, number][] = [
  ...Array.from({ length: 8 }, (): [number, number][] => [[384, 1152], [384, 384], [384, 2048], [1024, 384]]).flat(),
  [384, 4096],
]

/** the step's weights in one block of `b`'s arena; step() runs the matmuls, copy() memory.copy's the weights */
function decodeStep(b: CreatedBackend): { step: () => void; copy: () => void; bytes: number; out: () => Float32Array } {
  const floats = SHAPES.reduce((s, [i, o]) => s + i * o, 0)
  const w = b.heap.alloc(floats * 4), x = b.heap.alloc(1024 * 4), y = b.heap.alloc(4096 * 4), dst = b.heap.alloc(floats * 4)
  const F = b.heap.F32
  for (let i = 0; i < floats; i++) F[(w >> 2) + i] = Math.cos(i) * 0.05
  for (let i = 0; i < 1024; i++) F[(x >> 2) + i] = Math.sin(i)
  const step = () => {
    let p = w
    for (const [i, o] of SHAPES) {
      b.matmul(x, p, 0, y, 1, i, o)
      p += i * o * 4
    }
  }
  return { step, copy: () => b.copyBytes(dst, w, floats * 4), bytes: floats * 4, out: () => b.heap.F32.slice(y >> 2, (y >> 2) + 4096) }
}

const timed = (f: () => void): number => {
  const t = performance.now()
  f()
  return performance.now() - t
}

export async function main(argv = process.argv.slice(2)): Promise<void> {
  const { values: v } = parseArgs({ args: argv, options: { rounds: { type: 'string' }, baseline: { type: 'string' } } })
  const rounds = Number(v.rounds ?? 40)
  if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error(`--rounds: ${v.rounds} is not a positive integer`)
  const cur = await createBackend('wasm')
  const dir = v.baseline?.replace(/\/?$/, '/')
  const base = dir === undefined ? undefined : await createBackend('wasm', { wasm: readFileSync(dir + 'kvkit.wasm'), relaxedWasm: readFileSync(dir + 'kvkit.relaxed.wasm') })
  const A = decodeStep(cur)
  const B = base && decodeStep(base)
  A.step()
  B?.step()
  const same = B ? A.out().every((x, i) => Object.is(x, B.out()[i])) : true
  let ta = Infinity, tb = Infinity, tc = Infinity
  for (let r = 0; r < rounds; r++) {
    ta = Math.min(ta, timed(A.step))
    if (B) tb = Math.min(tb, timed(B.step))
    tc = Math.min(tc, timed(A.copy))
  }
  const gbs = (ms: number) => A.bytes / ms / 1e6
  console.log(`decode step's matmuls, ${(A.bytes / 2 ** 20).toFixed(0)} MiB of float32 weights, wasm build ${kernelBuild(cur)}, fastest of ${rounds}`)
  console.log(`  this build     ${ta.toFixed(3)} ms   ${gbs(ta).toFixed(1)} GB/s of weights   ${(tc / ta).toFixed(2)} of memory.copy speed`)
  if (B) console.log(`  baseline       ${tb.toFixed(3)} ms   ${gbs(tb).toFixed(1)} GB/s   this build x${(tb / ta).toFixed(2)}; outputs bit-equal: ${same}`)
  console.log(`  memory.copy    ${tc.toFixed(3)} ms   ${gbs(tc).toFixed(1)} GB/s read (and as many written)`)
  if (!same) process.exitCode = 1
}

if (import.meta.url === `file://${process.argv[1]}`) await main()
