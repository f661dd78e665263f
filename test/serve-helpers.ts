import OpenAI from 'openai'
import { afterAll, beforeAll } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { serve, type KvkitServer, type ServeOptions } from '../src/serve/http.js'

export const ID = 'fixture-14m'

/** what a test file of the server uses: the fixture model, a server on a free port, an openai client on it */
export interface Served {
  model: LlamaModel
  server: KvkitServer
  client: OpenAI
}

/** loads the fixture once for the file, starts `kvkit serve` on it with `options`, and stops both after */
export function useServer(options: ServeOptions = {}): Served {
  const s = {} as Served
  beforeAll(async () => {
    s.model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
    s.server = await serve(s.model, { port: 0, modelId: ID, ...options })
    s.client = new OpenAI({ baseURL: `${s.server.url}/v1`, apiKey: options.apiKey ?? 'unused', maxRetries: 0 })
  })
  afterAll(async () => {
    await s.server?.close()
    s.model?.dispose()
  })
  return s
}
