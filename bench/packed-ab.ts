// Integer key scoring of several relaxed-SIMD wasm builds in one process, alternating round by round, each
// against float32 scoring on its own instance: an A/B of kernel changes that the machine's drift over
// separate runs would swamp.
//   deno run -A dist/bench/packed-ab.js BASE.wasm NEW.wasm [...]
//   node --experimental-wasm-relaxed-simd dist/bench/packed-ab.js BASE.wasm NEW.wasm [...]
import { readFileSync } from 'node:fs'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { residentScoring, scoringSpeed } from './packed.js'

const SCORERS = [{ name: 'float32', bits: 0 }, { name: 'int4 integer', bits: 4, integer: true }, { name: 'int2 integer', bits: 2, integer: true }]

function line(tag: string, name: string, r: Record<string, number>): void {
  const ratio = (k: string) => `${(r[k] / 1e6).toFixed(1)} (${(r[k] / r.float32).toFixed(2)}x)`
  console.log(`${tag} ${name}: float32 ${(r.float32 / 1e6).toFixed(1)} M keys/s, int4 ${ratio('int4 integer')}, int2 ${ratio('int2 integer')}`)
}

/** three rounds of: every build's whole-cache scoring (the fixture's shape at 32k), then every build's resident one */
export async function run(files = process.argv.slice(2)): Promise<void> {
  if (files.length < 1) throw new RangeError('packed-ab: give one or more relaxed wasm builds (files)')
  const names = files.map((f) => f.split('/').pop()!.replace(/\.wasm$/, ''))
  const builds: CreatedBackend[] = []
  for (const f of files) builds.push(await createBackend('wasm', { relaxed: true, threads: 1, relaxedWasm: readFileSync(f) }))
  const runtime = 'Deno' in globalThis ? 'deno' : 'Bun' in globalThis ? 'bun' : `node ${process.version}`
  console.log(`${runtime} ${new Date().toISOString()}`)
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < builds.length; i++) line(`whole32k round ${round}`, names[i], await scoringSpeed(builds[i], 32768, 64, 3, 8, 2, SCORERS))
    for (let i = 0; i < builds.length; i++) line(`resident4096 round ${round}`, names[i], residentScoring(builds[i], 4096, 64, SCORERS).rates)
  }
  console.log(`accumulating dot: ${builds.map((b, i) => `${names[i]} ${b.packedIntDotAdd?.() ?? 0}`).join(', ')}`)
  for (const b of builds) b.close?.()
}

if (import.meta.url === `file://${process.argv[1]}`) await run()
