import { spawn } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { listPolicies } from '../src/policies/registry.js'
import { packageRoot } from '../src/eval/paths.js'

/** the built CLI, as a user runs it (npm test builds dist/ first) */
function kvkit(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['bin/kvkit.js', ...args], { cwd: packageRoot(), timeout: 60_000 })
    let stdout = '', stderr = ''
    p.stdout.on('data', (d) => (stdout += d))
    p.stderr.on('data', (d) => (stderr += d))
    p.on('error', reject)
    p.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

const MODEL = 'models/fixture-14m'
const evalArgs = (over: Record<string, string>) => {
  const a: Record<string, string> = { model: MODEL, policy: 'full', task: 'passkey', length: '1024', samples: '2', ...over }
  return Object.entries(a).flatMap(([k, v]) => [`--${k}`, v])
}

describe('kvkit command line: bad arguments end with one line and a non-zero exit code', () => {
  const cases: [string, string[], RegExp][] = [
    ['unknown task', evalArgs({ task: 'passkey,nosuchtask' }), /^kvkit: unknown task "nosuchtask" \(tasks: passkey, niah_single, niah_multikey, niah_multivalue, vt, kv\)$/],
    ['length beyond max_position_embeddings', evalArgs({ length: '1024,9000' }), /^kvkit: length 9000 is beyond what the model supports \(max_position_embeddings 8192; --context-limit lifts it\)$/],
    ['missing model folder', evalArgs({ model: 'models/no-such-model' }), /^kvkit: model folder not found: models\/no-such-model$/],
    ['malformed spec', evalArgs({ policy: 'snapkv:budget' }), /^kvkit: .*"budget".*snapkv:budget.*not key=value$/],
    ['unknown policy', evalArgs({ policy: 'nosuchpolicy' }), /^kvkit: unknown policy "nosuchpolicy"; known policies: full, .*snapkv/],
    ['unknown policy option', evalArgs({ policy: 'snapkv:colour=red' }), /^kvkit: policy snapkv has no option "colour"; its options: budget/],
    ['budget out of range', evalArgs({ policy: 'snapkv:budget=1.5' }), /^kvkit: .*budget=1\.5 is out of range/],
    ['samples not a number', evalArgs({ samples: 'many' }), /^kvkit: --samples must be a non-negative integer, got "many"$/],
    ['zero samples', evalArgs({ samples: '0' }), /^kvkit: --samples must be at least 1, got 0$/],
    ['unknown backend', evalArgs({ backend: 'cuda' }), /^kvkit: unknown backend "cuda"/],
    ['missing haystack', evalArgs({ haystack: 'no/such/dir' }), /^kvkit: haystack not found: no\/such\/dir$/],
    ['unknown flag', [...evalArgs({}), '--frobnicate'], /^kvkit: Unknown option '--frobnicate'/],
    ['no policy', ['eval', '--model', MODEL, '--task', 'passkey', '--length', '1024', '--samples', '1'].slice(1), /^kvkit: --policy is required/],
    ['generate without a prompt', ['generate', '--model', MODEL], /^kvkit: give exactly one of --prompt TEXT and --prompt-file FILE$/],
    ['perplexity too short', ['perplexity', '--model', MODEL, '--length', '1', '--samples', '1'], /^kvkit: length 1 is too short: perplexity needs at least 2 tokens$/],
    ['perplexity too long', ['perplexity', '--model', MODEL, '--length', '9000', '--samples', '1'], /^kvkit: length 9000 is beyond what the model supports \(max_position_embeddings 8192\)$/],
    ['generate with a bad spec', ['generate', '--model', MODEL, '--prompt', 'hi', '--policy', 'tova:budget=0'], /^kvkit: .*budget=0 is out of range/],
  ]
  for (const [what, args, message] of cases) {
    // each case is a separate process: run them side by side
    it.concurrent(what, async () => {
      const argv = args[0] === 'generate' || args[0] === 'perplexity' ? args : ['eval', ...args]
      const r = await kvkit(...argv)
      expect(r.code, r.stderr).toBe(2)
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1)
      expect(r.stderr.trimEnd()).toMatch(message)
      expect(r.stdout).toBe('')
    })
  }

  it.concurrent('an unknown command', async () => {
    const r = await kvkit('frobnicate')
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/^kvkit: unknown command "frobnicate" \(commands: eval, generate, perplexity, policies, mpc, main, prompts, playground, serve\)\n$/)
  })
})

describe('kvkit policies', () => {
  it('prints one line per registered policy, its name first, then its options with defaults', async () => {
    const r = await kvkit('policies')
    expect(r.code).toBe(0)
    const lines = r.stdout.trimEnd().split('\n')
    const registered = listPolicies()
    expect(lines).toHaveLength(registered.length + 1)
    expect(lines[0]).toMatch(/^full\b/)
    for (const p of registered) {
      const line = lines.find((l) => l.startsWith(p.name + ' '))
      expect(line, p.name).toBeDefined()
      for (const o of p.options) expect(line).toContain(`${o.name}=${o.default === null ? '(unset)' : String(o.default)}`)
    }
  })
})
