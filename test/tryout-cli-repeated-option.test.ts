/**
 * A single-value option given twice is refused (exit 2, one line naming it) before any work. parseArgs
 * kept the last silently: `kvkit generate --policy snapkv --policy h2o` ran h2o alone, where eval's
 * --policy (a list) runs both; `--max-new-tokens 4 --max-new-tokens 400` generated 400. eval's --policy
 * still takes several.
 */
import { describe, expect, it } from 'vitest'
import { cli } from './cli-capture.js'

const MODEL = 'models/fixture-14m'

describe('a single-value option given twice', () => {
  it('generate, eval, perplexity: exit 2 naming the option, nothing generated', async () => {
    const CASES: [string[], string][] = [
      [['generate', '--model', MODEL, '--prompt', 'x', '--policy', 'snapkv', '--policy', 'h2o', '--max-new-tokens', '1'], '--policy'],
      [['generate', '--model', MODEL, '--prompt', 'x', '--prompt', 'y', '--max-new-tokens', '1'], '--prompt'],
      [['generate', '--model', MODEL, '--prompt', 'x', '--max-new-tokens', '1', '--max-new-tokens', '400'], '--max-new-tokens'],
      [['generate', '--model', MODEL, '--model', 'elsewhere', '--prompt', 'x', '--max-new-tokens', '1'], '--model'],
      [['eval', '--model', MODEL, '--policy', 'full', '--task', 'passkey', '--length', '512', '--samples', '1', '--samples', '8'], '--samples'],
      [['perplexity', '--model', MODEL, '--length', '256', '--length=512', '--samples', '1'], '--length'],
    ]
    for (const [args, name] of CASES) {
      const r = await cli(...args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr.trim(), args.join(' ')).toBe(`kvkit: ${name} is given twice (it takes one value)`)
      expect(r.stdout, args.join(' ')).toBe('')
    }
  })

  it("eval's --policy is a list: given twice, both run", async () => {
    // an unknown second policy shows that the second is read, and is refused before the model loads
    const r = await cli('eval', '--model', MODEL, '--policy', 'full', '--policy', 'nosuchpolicy', '--task', 'passkey', '--length', '512', '--samples', '1')
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/unknown policy "nosuchpolicy"/)
  })
})
