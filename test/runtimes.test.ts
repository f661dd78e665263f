import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

// The built package (dist/, build/*.wasm: `npm run build`, which `npm test` runs first) under each runtime.
const root = fileURLToPath(new URL('..', import.meta.url))
const script = fileURLToPath(new URL('./runtimes-smoke.mjs', import.meta.url))
const runtimes: [string, string, string[]][] = [
  ['node', process.execPath, [script]],
  // Node 20 has relaxed SIMD behind a flag: with it, the relaxed build runs under V8 too
  ['node --experimental-wasm-relaxed-simd', process.execPath, ['--experimental-wasm-relaxed-simd', script]],
  ['bun', `${root}node_modules/.bin/bun`, [script]],
  ['deno', `${root}node_modules/.bin/deno`, ['run', '--allow-read', '--no-prompt', script]],
]

describe('the wasm kernels run alike under Node, Bun and Deno', () => {
  it('has a build to run', () => {
    expect(existsSync(`${root}dist/src/index.js`), 'dist/ is missing: run `npm run build` first').toBe(true)
    expect(existsSync(`${root}build/kvkit.wasm`), 'build/kvkit.wasm is missing: run `npm run build` first').toBe(true)
  })

  it.each(runtimes)('%s loads both builds and matches the reference', (name, bin, args) => {
    expect(existsSync(bin), `${name} binary missing at ${bin}`).toBe(true)
    const out = execFileSync(bin, args, { cwd: root, encoding: 'utf8', timeout: 90_000, env: { ...process.env, NO_COLOR: '1' } })
    const report = JSON.parse(out.trim().split('\n').pop()!)
    expect(report.runtime).toBe(name.split(' ')[0])
    const { plainRequested: plain, relaxedRequested: relaxed } = report.builds
    expect(plain.build).toBe('simd')
    expect(relaxed.build).toBe(report.relaxedSupported ? 'relaxed' : 'simd')
    for (const b of [plain, relaxed]) {
      expect(b.topEqual).toBe(true)
      expect(b.scoreErr).toBeLessThan(1e-4)
      expect(b.attendErr).toBeLessThan(1e-5)
    }
    // Bun and Deno ship relaxed SIMD: there the relaxed build really runs
    if (name !== 'node') expect(relaxed.build).toBe('relaxed')
  })
})
