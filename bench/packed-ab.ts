// Integer key scoring of several relaxed-SIMD wasm builds in one process, alternating round by round, each
// against float32 scoring on its own instance: an A/B of kernel changes that the machine's drift over
// separate runs would swamp.
//   deno run -A dist/bench/packed-ab.js BASE.wasm NEW.wasm [...] [--group 32,128]
//   node --experimental-wasm-relaxed-simd dist/bench/packed-ab.js BASE.wasm NEW.wasm [...]
// --group: the packed keys' token groups (KIVI's group_size: 32, 64, 128; default 32), each build run at
// each group in turn within a round (a build that predates key groups of 64 and 128 refuses them).
import { readFileSync } from 'node:fs'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { residentScoring, scoringSpeed } from './packed.js'

const SCORERS = [{ name: 'float32', bits: 0 }, { name: 'int4 integer', bits: 4, integer: true }, { name: 'int2 integer', bits: 2, integer: true }]

/** a build's name, with its key group when not 32 */
const tag = (name: string, group: number) => (group === 32 ? name : `${name} g${group}`)

function line(tag: string, name: string, r: Record<string, number>): void {
  const ratio = (k: string) => `${(r[k] / 1e6).toFixed(1)} (${(r[k] / r.float32).toFixed(2)}x)`
  console.log(`${tag} ${name}: float32 ${(r.float32 / 1e6).toFixed(1)} M keys/s, int4 ${ratio('int4 integer')}, int2 ${ratio('int2 integer')}`)
}

/** three rounds of: every build's whole-cache scoring (the fixture's shape at 32k), then every build's resident one */
export async function run(argv = process.argv.slice(2)): Promise<void> {
  const gi = argv.indexOf('--group')
  const groups = gi >= 0 ? (argv[gi + 1] ?? '').split(',').map(Number) : [32]
  for (const g of groups) if (![32, 64, 128].includes(g)) throw new RangeError(`packed-ab: --group takes 32, 64 or 128 (comma-separated), got ${argv[gi + 1]}`)
  const files = argv.filter((_, i) => gi < 0 || (i !== gi && i !== gi + 1))
  if (files.length < 1) throw new RangeError('packed-ab: give one or more relaxed wasm builds (files)')
  const names = files.map((f) => f.split('/').pop()!.replace(/\.wasm$/, ''))
  const builds: CreatedBackend[] = []
  for (const f of files) builds.push(await createBackend('wasm', { relaxed: true, threads: 1, relaxedWasm: readFileSync(f) }))
  const runtime = 'Deno' in globalThis ? 'deno' : 'Bun' in globalThis ? 'bun' : `node ${process.version}`
  console.log(`${runtime} ${new Date().toISOString()}`)
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < builds.length; i++) for (const g of groups) line(`whole32k round ${round}`, tag(names[i], g), await scoringSpeed(builds[i], 32768, 64, 3, 8, 2, SCORERS, g))
    for (let i = 0; i < builds.length; i++) for (const g of groups) line(`resident4096 round ${round}`, tag(names[i], g), residentScoring(builds[i], 4096, 64, SCORERS, g).rates)
  }
  console.log(`accumulating dot: ${builds.map((b, i) => `${names[i]} ${b.packedIntDotAdd?.() ?? 0}`).join(', ')}`)
  for (const b of builds) b.close?.()
}

if (import.meta.url === `file://${process.argv[1]}`) await run()
