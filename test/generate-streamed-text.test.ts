/**
 * Kind 4 of issue 8: the streamed pieces, joined, equal `result.text` in every case, and a stop string
 * ends generation at its first occurrence wherever it falls relative to the tokens (inside a token,
 * across tokens, at a boundary), with multi-byte characters split across byte-level tokens and with
 * sampling. The right text is the free-running text cut before the stop string's first occurrence.
 * Grids: (1) TextStream over real tokenizations of texts with accents, CJK and emoji x stop sets;
 * (2) generate on the fixture (greedy, sampled) and a tiny random model (sampled) x stop strings cut
 * from its own free-running text at every kind of offset.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { TextStream } from '../src/model/text-stream.js'
import type { GenerateOptions } from '../src/model/types.js'
import { makeTinyModel } from './tiny-model.js'

let fixture: LlamaModel
let tiny: LlamaModel
beforeAll(async () => {
  fixture = await loadModel('models/fixture-14m', { backend: 'wasm' })
  tiny = await loadModel(makeTinyModel({ eos_token_id: null }), { backend: 'wasm' })
})
afterAll(() => {
  fixture?.dispose()
  tiny?.dispose()
})

const cutAt = (text: string, stops: string[]) => {
  const at = stops.map((s) => text.indexOf(s)).filter((i) => i >= 0)
  return at.length ? text.slice(0, Math.min(...at)) : text
}

describe('TextStream over byte-level tokens', () => {
  const TEXTS = [' carried on by the pond, and the pond was deep', 'naïve café: 漢字かな and 😀 emoji 😀 again', 'ééé ééé', 'a pond ponders']
  const STOPS = [[], ['pond'], ['po'], ['d, a'], ['é'], ['字か'], ['😀'], ['nowhere'], ['deep', 'the'], ['ond', 'pon']]
  it('texts x stop sets: pieces join to the text cut at the first stop', () => {
    let cases = 0
    for (const text of TEXTS) {
      const ids = fixture.tokenizer.encode(text)
      expect(fixture.tokenizer.decode(ids)).toBe(text)
      for (const stop of STOPS) {
        const s = new TextStream(stop)
        let joined = ''
        for (let i = 1; i <= ids.length && s.stoppedText === null; i++) joined += s.update(fixture.tokenizer.decode(ids.slice(0, i)))
        const final = s.stoppedText ?? text
        joined += s.flush(final)
        expect(final, `${JSON.stringify(text)} stop ${JSON.stringify(stop)}`).toBe(cutAt(text, stop))
        expect(joined).toBe(final)
        cases++
      }
    }
    expect(cases).toBe(40)
  })
  it('the issue\'s example: stop "pond" streams " carried on by the ", as the result says', () => {
    const ids = fixture.tokenizer.encode(' carried on by the pond')
    const s = new TextStream(['pond'])
    let joined = ''
    for (let i = 1; i <= ids.length && s.stoppedText === null; i++) joined += s.update(fixture.tokenizer.decode(ids.slice(0, i)))
    joined += s.flush(s.stoppedText!)
    expect(joined).toBe(' carried on by the ')
    expect(s.stoppedText).toBe(' carried on by the ')
  })
})

async function collect(model: LlamaModel, prompt: number[], o: GenerateOptions) {
  const gen = model.generate(prompt, o)
  const pieces: string[] = []
  const ids: number[] = []
  for await (const t of gen) {
    pieces.push(t.text)
    ids.push(t.id)
  }
  return { r: await gen.result, joined: pieces.join(''), ids }
}

describe('generate: streamed text and stop strings', () => {
  it('runs x stop strings at token boundaries, inside tokens and across them', async () => {
    const runs: [string, LlamaModel, number[], GenerateOptions][] = [
      ['fixture greedy', fixture, fixture.tokenizer.encode('Once upon a time'), { maxNewTokens: 30 }],
      ['fixture sampled', fixture, [5], { maxNewTokens: 40, temperature: 1.5, seed: 3 }],
      ['tiny sampled', tiny, [5, 9], { maxNewTokens: 40, temperature: 1, seed: 1 }],
    ]
    let cases = 0
    for (const [name, model, prompt, o] of runs) {
      const free = await collect(model, prompt, o)
      expect(free.joined, name).toBe(free.r.text)
      expect(free.ids, name).toEqual(free.r.ids)
      expect(free.r.finishReason).toBe('length')
      const T = free.r.text
      // token boundaries of the free text
      const bounds = free.r.ids.map((_, i) => model.tokenizer.decode(free.r.ids.slice(0, i + 1)).length).filter((b) => b > 2 && b < T.length - 4)
      const stops = new Set<string>(['\u0001never'])
      for (const b of bounds.slice(0, 6)) {
        stops.add(T.slice(b, b + 3)) // starts at a boundary
        stops.add(T.slice(b - 1, b + 2)) // spans a boundary
        stops.add(T.slice(b - 2, b - 1)) // inside a token (one character)
      }
      for (const stop of stops) {
        if (!stop || stop.includes('\uFFFD')) continue
        const got = await collect(model, prompt, { ...o, stop: [stop] })
        const where = `${name} stop ${JSON.stringify(stop)}`
        expect(got.r.text, where).toBe(cutAt(T, [stop]))
        expect(got.joined, where).toBe(got.r.text)
        expect(got.ids, where).toEqual(got.r.ids)
        expect(got.r.finishReason, where).toBe(T.includes(stop) ? 'stop' : 'length')
        cases++
      }
    }
    expect(cases).toBeGreaterThanOrEqual(30)
  })
})
