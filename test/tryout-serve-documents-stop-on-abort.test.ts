/**
 * kvkit serve: a request with `documents` whose client goes away while CacheBlend computes them stops
 * between the documents (the request's signal reaches CacheBlend.prepare): every document was prefilled
 * and stored first, and only then did the generation see the abort. A later request with the same
 * documents finds only those computed before the abort.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { useFixtureModel } from './fixture-model-helpers.js'
import { ServeEngine } from '../src/serve/engine.js'
import type { ChatRequest } from '../src/serve/schema.js'

const fixture = useFixtureModel()
const docs = [
  { text: 'The harbour master keeps the passkey 58213 in a tin box under the lighthouse stairs.' },
  { text: 'Gulls circled over the old lighthouse while the fishing boats came home with the tide.' },
  { text: 'The ferry to the island leaves at noon on weekdays and at ten on Sundays, weather permitting.' },
]
let engine: ServeEngine | undefined
afterAll(() => engine?.close(new Error('done')))

describe('documents of an aborted request', () => {
  it('the abort is seen after the first document: the request rejects with its reason, the other documents are not computed', async () => {
    engine = new ServeEngine(fixture.model, { modelId: 'm', tokenizerThread: false, blend: { ratio: 1 } })
    const req = { model: 'm', messages: [{ role: 'user', content: 'What is the passkey?' }], documents: docs, max_tokens: 2, temperature: 0 } as unknown as ChatRequest
    const ac = new AbortController()
    const reason = new Error('client gone')
    const running = engine.run(await engine.chatJob(req), ac.signal, () => {})
    // queued before the turn CacheBlend yields after its first computed document
    setImmediate(() => ac.abort(reason))
    await expect(running).rejects.toBe(reason)
    const after = await engine.run(await engine.chatJob(req), new AbortController().signal, () => {})
    const first = fixture.model.tokenizer.encode(`${docs[0].text}\n`).length
    expect(after.usage.prompt_tokens_details.cached_tokens).toBe(first)
  })
})
