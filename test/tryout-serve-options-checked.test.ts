/**
 * serve() and new ServeEngine() check their options before anything starts (ModelInputError naming the
 * option), as the CLI checks its flags: an option they do not know was ignored (`prot: 1`, its default
 * used), an empty host listened on every interface (the default is this machine only), an empty or
 * number apiKey and an empty modelId were taken (no client can send or name them), a template that is
 * not a ChatTemplate failed at the first chat request, a port of -1 or 1.5 was node's RangeError after
 * the engine (and its tokenizer thread) had started, and null options or model were TypeErrors.
 */
import { describe, expect, it } from 'vitest'
import { useFixtureModel } from './fixture-model-helpers.js'
import { ModelInputError } from '../src/model/errors.js'
import { serve, type ServeOptions } from '../src/serve/http.js'
import { ServeEngine } from '../src/serve/engine.js'
import type { LlamaModel } from '../src/model/model.js'

const fixture = useFixtureModel()

describe('serve options', () => {
  it.each([
    [{ prot: 1 }, 'serve: unknown option "prot"; options: modelId, template, policy'],
    [{ host: '' }, 'serve: host must be a non-empty string (an address or name of this machine), got ""'],
    [{ host: 127 }, 'serve: host must be a non-empty string (an address or name of this machine), got 127'],
    [{ apiKey: '' }, 'serve: apiKey must be a non-empty string (leave it out for no key), got ""'],
    [{ apiKey: 5 }, 'serve: apiKey must be a non-empty string (leave it out for no key), got 5'],
    [{ modelId: '' }, 'serve: modelId must be a non-empty string, got ""'],
    [{ template: 'chatml' }, 'serve: template must be a ChatTemplate (ChatTemplate.fromTokenizerConfig(config), CHATML_TEMPLATE), got "chatml"'],
    [{ port: -1 }, 'serve: port must be an integer in [0, 65535] (0: a free one), got -1'],
    [{ port: 1.5 }, 'serve: port must be an integer in [0, 65535] (0: a free one), got 1.5'],
    [{ port: '0' }, 'serve: port must be an integer in [0, 65535] (0: a free one), got "0"'],
    [{ maxBodyBytes: 0 }, 'serve: maxBodyBytes must be a positive integer, got 0'],
    [null, 'serve: options must be an object, got null'],
  ] as [unknown, string][])('serve(model, %j): ModelInputError', async (options, message) => {
    // a server that starts is closed, so a case that is not refused fails alone
    const start = () => serve(fixture.model, (options === null ? null : { port: 0, ...options }) as ServeOptions).then((s) => s.close())
    await expect(start()).rejects.toThrow(ModelInputError)
    await expect(start()).rejects.toThrow(message)
  })

  it('a model that is not one: ModelInputError from serve and the engine', async () => {
    await expect(serve(null as unknown as LlamaModel, { port: 0 })).rejects.toThrow('serve: model must be a loaded model (loadModel), got null')
    expect(() => new ServeEngine(null as unknown as LlamaModel)).toThrow(ModelInputError)
  })

  it('the engine refuses the listener options, which are serve\'s; serve with good options serves', async () => {
    expect(() => new ServeEngine(fixture.model, { port: 0 } as never)).toThrow('serve: unknown option "port"')
    const s = await serve(fixture.model, { port: 0, host: '127.0.0.1', apiKey: 'k', modelId: 'm', maxBodyBytes: 1024, tokenizerThread: false })
    try {
      const r = await fetch(`${s.url}/v1/models`, { headers: { Authorization: 'Bearer k' } })
      expect(((await r.json()) as { data: { id: string }[] }).data[0].id).toBe('m')
    } finally {
      await s.close()
    }
  })
})
