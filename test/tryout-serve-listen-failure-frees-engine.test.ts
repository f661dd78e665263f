/**
 * serve() on an address it cannot listen on rejects with the listen error and leaves nothing behind:
 * its engine had started the tokenizer thread (a worker holding a second copy of the tokenizer) and
 * made its prefix cache, and neither was ever stopped, so a process trying ports one by one kept a
 * worker thread a failed attempt.
 */
import { createServer, type AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { loadModel } from '../src/node/load.js'
import { defaultModelDir } from '../src/eval/paths.js'
import type { LlamaModel } from '../src/model/model.js'
import { serve } from '../src/serve/http.js'
import { TokenizerThread } from '../src/serve/tokenizer-thread.js'

let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
})
afterAll(() => model?.dispose())

describe('serve() on a port in use', () => {
  it('rejects with EADDRINUSE and stops the tokenizer thread it started', async () => {
    const holder = createServer()
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r))
    const port = (holder.address() as AddressInfo).port
    const close = vi.spyOn(TokenizerThread.prototype, 'close')
    try {
      const e = await serve(model, { port, host: '127.0.0.1' }).then(() => null, (x: unknown) => x)
      expect((e as NodeJS.ErrnoException).code).toBe('EADDRINUSE')
      expect(close).toHaveBeenCalledTimes(1)
    } finally {
      close.mockRestore()
      holder.close()
    }
  })
})
