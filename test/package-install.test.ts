/**
 * The package as a user gets it: `npm pack`, then `npm install ./kvkit-*.tgz` into an empty folder
 * (offline where npm's cache has the dependencies), then TypeScript resolves kvkit's types there for
 * every entry point, and `npx kvkit generate` runs the packaged model; Deno runs and type-checks a script
 * there as README's "In Deno" says, from the folder's node_modules/ with no registry to reach.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { beforeAll, describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('..', import.meta.url))
const npm = (cwd: string, ...args: string[]) => execFileSync('npm', args, { cwd, encoding: 'utf8', timeout: 240_000, env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' } })

const USER_CODE = `import { loadModel, snapkv, compose, think, type LoadProgress, type GenerateResult } from 'kvkit'
import { loadModel as loadFolder } from 'kvkit/node'
import { evaluate, type EvalResult } from 'kvkit/eval'
import { Heap } from 'kvkit/kernels'

const progress: LoadProgress[] = []
export async function run(url: string): Promise<GenerateResult> {
  const model = await loadModel(new URL(url), { onProgress: (p) => progress.push(p) })
  return model.generate('The pass key is', { maxNewTokens: 4, policy: compose(snapkv({ budget: 0.25, window: 32 }), think({ ratio: 0.5 })) }).result
}
// @ts-expect-error: a budget is a number (the options are typed)
snapkv({ budget: 'a quarter' })
// @ts-expect-error: pooling is one of max | avg | none
snapkv({ pooling: 'median' })
export const folder: typeof loadFolder = loadFolder
export const results: Promise<EvalResult[]> | null = null as unknown as ReturnType<typeof evaluate>
export const heap = new Heap()
`

let dir: string
beforeAll(() => {
  const packDir = mkdtempSync(join(tmpdir(), 'kvkit-pack-'))
  npm(root, 'pack', '--pack-destination', packDir, '--silent')
  const tgz = readdirSync(packDir).find((f) => /^kvkit-.*\.tgz$/.test(f))!
  dir = mkdtempSync(join(tmpdir(), 'kvkit-user-'))
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'user', version: '1.0.0', type: 'module', private: true }))
  npm(dir, 'install', '--prefer-offline', '--omit=optional', '--ignore-scripts', join(packDir, tgz))
}, 300_000)

describe('npm pack, then npm install into an empty folder', () => {
  it("`import { loadModel } from 'kvkit'` and every entry point type-check with the package's own types", () => {
    writeFileSync(join(dir, 'user.ts'), USER_CODE)
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, lib: ['ES2022', 'DOM'], types: [], skipLibCheck: true },
      files: ['user.ts'],
    }))
    // tsc exits non-zero on any error, including an unused @ts-expect-error (types that do not check)
    const out = execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', dir], { cwd: dir, encoding: 'utf8' })
    expect(out).toBe('')
  }, 120_000)

  it('`npx kvkit generate` runs the packaged model', () => {
    const out = execFileSync('npx', ['--no-install', 'kvkit', 'generate', '--model', 'node_modules/kvkit/models/fixture-14m', '--policy', 'snapkv:budget=0.5',
      '--prompt', 'It is a truth universally acknowledged, that a single man', '--max-new-tokens', '6'], { cwd: dir, encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', 'pipe'] })
    expect(out.trim().length).toBeGreaterThan(0)
  }, 120_000)

  it('the installed root entry runs in Node: typed policy, model from file bytes', () => {
    writeFileSync(join(dir, 'run.mjs'), `import { readFileSync, readdirSync } from 'node:fs'
import { loadModel, snapkv } from 'kvkit'
const d = 'node_modules/kvkit/models/fixture-14m/'
const files = Object.fromEntries(readdirSync(d).filter((f) => /\\.(json|safetensors)$/.test(f)).map((f) => [f, new Blob([readFileSync(d + f)])]))
const model = await loadModel(files)
const { text, stats } = await model.generate('It is a truth universally acknowledged', { maxNewTokens: 5, policy: snapkv({ budget: 0.5 }) }).result
console.log(JSON.stringify({ text, newTokens: stats.newTokens }))
`)
    const out = JSON.parse(execFileSync(process.execPath, ['run.mjs'], { cwd: dir, encoding: 'utf8', timeout: 120_000 }).trim())
    expect(out.newTokens).toBeGreaterThan(0)
    expect(out.text.length).toBeGreaterThan(0)
  }, 120_000)

  it("Deno, as README's \"In Deno\" says: 'npm:kvkit' and 'kvkit/node' type-check and run, and `deno run npm:kvkit generate` works, offline", () => {
    writeFileSync(join(dir, 'deno-user.ts'), `import { loadModel, snapkv, type GenerateResult } from 'npm:kvkit'
import { loadModel as loadFolder } from 'kvkit/node'
const prompt = 'It is a truth universally acknowledged'
const folder = await loadFolder('node_modules/kvkit/models/fixture-14m', { threads: 1 })
const a: GenerateResult = await folder.generate(prompt, { maxNewTokens: 4, policy: snapkv({ budget: 0.5 }) }).result
folder.dispose()
const model = await loadModel(new URL('./node_modules/kvkit/models/fixture-14m/', import.meta.url), { threads: 1 })
const b: GenerateResult = await model.generate(prompt, { maxNewTokens: 4, policy: snapkv({ budget: 0.5 }) }).result
model.dispose()
console.log(JSON.stringify({ newTokens: b.stats.newTokens, same: a.text === b.text }))
`)
    // a fresh Deno cache and a registry that answers nothing: what Deno needs must come from node_modules/
    const env = { ...process.env, DENO_DIR: mkdtempSync(join(tmpdir(), 'kvkit-deno-dir-')), NPM_CONFIG_REGISTRY: 'http://127.0.0.1:9/', NO_COLOR: '1' }
    const deno = (...args: string[]) => execFileSync(join(root, 'node_modules/.bin/deno'), args, { cwd: dir, env, encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', 'pipe'] })
    deno('check', 'deno-user.ts')
    expect(JSON.parse(deno('run', '--allow-read', '--no-prompt', 'deno-user.ts').trim())).toEqual({ newTokens: 4, same: true })
    const out = deno('run', '--allow-read', '--no-prompt', 'npm:kvkit', 'generate', '--model', 'node_modules/kvkit/models/fixture-14m', '--prompt', 'It is', '--max-new-tokens', '4')
    expect(out.trim().length).toBeGreaterThan(0)
  }, 240_000)
})
