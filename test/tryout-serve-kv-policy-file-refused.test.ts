/**
 * kvkit serve: a request's `kv_policy` may not name a file (trimkv's and unionkv's gatesFile,
 * razorattention's calibrationFile, nosa's scoresFile: OptionSpec.readsFile): 400 naming kv_policy and
 * the option, nothing run. The spec was made on the server as given, so any client read the server's
 * files: `trimkv:gatesFile=/etc/passwd` answered whether the file exists and how it parses, and
 * `razorattention:calibrationFile=README.md` calibrated on it and answered 200. The server's own
 * policy (--policy, ServeOptions.policy) still names files.
 */
import { describe, expect, it } from 'vitest'
import { ID, useServer } from './serve-helpers.js'

const GATES = 'models/fixture-14m-trimkv/gates-M512.safetensors'
const served = useServer({ kvBudget: 4096, cacheTokens: 1024, policy: `unionkv:budget=0.5,gatesFile=${GATES}` })

async function chat(extra: Record<string, unknown>) {
  const r = await fetch(`${served.server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: ID, messages: [{ role: 'user', content: 'The passkey is 58213.' }], max_tokens: 2, temperature: 0, ...extra }),
  })
  return { status: r.status, body: (await r.json()) as { error?: { message: string; param: string | null } } }
}

describe("kvkit serve: a request's kv_policy naming a file", () => {
  it('400 naming kv_policy and the option, for each option that reads a file, alone or composed; nothing run', async () => {
    const CASES: [string, string][] = [
      [`trimkv:budget=0.5,gatesFile=${GATES}`, 'trimkv.gatesFile'],
      ['trimkv:gatesFile=/etc/passwd', 'trimkv.gatesFile'],
      [`unionkv:gatesFile=${GATES}`, 'unionkv.gatesFile'],
      ['razorattention:budget=0.5,calibrationFile=README.md', 'razorattention.calibrationFile'],
      ['nosa:scoresFile=models/fixture-14m-nosa/scores.safetensors', 'nosa.scoresFile'],
      [`unionkv:gatesFile=${GATES}+think:ratio=0.25`, 'unionkv.gatesFile'],
    ]
    const before = served.server.engine.stats.requests
    for (const [spec, option] of CASES) {
      const r = await chat({ kv_policy: spec })
      expect(r.status, spec).toBe(400)
      expect(r.body.error?.param, spec).toBe('kv_policy')
      expect(r.body.error?.message, spec).toBe(`kv_policy: ${option} names a file on the server, which a request may not; the server's --policy (ServeOptions.policy) may`)
    }
    expect(served.server.engine.stats.requests).toBe(before)
  })

  it("a request's spec without files runs, and so does the server's own policy with its gates file", async () => {
    expect((await chat({ kv_policy: 'snapkv:budget=0.5' })).status).toBe(200)
    expect((await chat({})).status).toBe(200)
  })
})
