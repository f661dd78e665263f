import OpenAI from 'openai'
import { describe, expect, it } from 'vitest'
import { ID, useServer } from './serve-helpers.js'

// `kvkit serve --scheduler program` (Continuum's order) driven by the openai client: with one request at
// a time, a call of the agent program that came first goes before a waiting call of a later program.
const served = useServer({ parallel: 1, scheduler: 'program' })
const ask = (content: string, max: number, program: string) =>
  served.client.chat.completions.create({ model: ID, messages: [{ role: 'user', content }], temperature: 0, max_tokens: max, program_id: program } as never) as Promise<OpenAI.Chat.Completions.ChatCompletion>
const wait = async (ok: () => boolean) => {
  while (!ok()) await new Promise((r) => setTimeout(r, 2))
}

describe('kvkit serve: calls ordered by agent program', () => {
  it("a waiting call of the first program starts before an earlier-queued call of a later one", async () => {
    const s = served.server.engine.scheduler
    const done: string[] = []
    const first = ask(`Plan the trip. ${'The road winds along the coast. '.repeat(6)}`, 96, 'agent-1').then(() => done.push('agent-1 turn 1'))
    await wait(() => s.running === 1)
    const other = ask('Another agent asks a question.', 4, 'agent-2').then(() => done.push('agent-2 turn 1'))
    await wait(() => s.queued === 1)
    const next = ask('The tool answered: 42 km. Go on.', 4, 'agent-1').then(() => done.push('agent-1 turn 2'))
    await wait(() => s.queued === 2)
    await Promise.all([first, other, next])
    expect(done).toEqual(['agent-1 turn 1', 'agent-1 turn 2', 'agent-2 turn 1'])
  })

  it('an empty program_id is a 400 naming it', async () => {
    await expect(ask('Hello.', 2, '')).rejects.toMatchObject({ status: 400, param: 'program_id' })
  })
})
