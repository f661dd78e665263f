import { Worker } from 'node:worker_threads'

/** What a worker rebuilds the tokenizer from: the parsed tokenizer.json and tokenizer_config.json (HfTokenizerAdapter.source). */
export interface TokenizerSource {
  json: unknown
  config: unknown
}

export interface TokenizerRequest {
  id: number
  text: string
}

export type TokenizerReply = { id: number; ids: Int32Array } | { id: number; error: string }

/** the compiled worker: tests run the TypeScript sources, whose worker must still be plain JS */
function workerUrl(): URL {
  return import.meta.url.endsWith('.ts') ? new URL('../../dist/src/serve/tokenizer-worker.js', import.meta.url) : new URL('./tokenizer-worker.js', import.meta.url)
}

/**
 * The model's tokenizer in a worker thread, for `kvkit serve`: encode(text) resolves to the ids the
 * model's own tokenizer gives (the same tokenizer.json, built again in the worker), while the event loop
 * goes on serving other clients. Tokenizing is what holds a server's one thread for long: about 1 s a
 * MB of text for the fixture's byte-level BPE (bench/token-bound.ts), and a prompt the tokenizer's lower
 * bound cannot refuse (token-bound.ts: up to about the context x the longest vocabulary entry in
 * characters) must be tokenized to be counted, whether it then fits or not.
 * Texts are encoded one at a time, in the order sent. A worker that fails (its script missing from a
 * bundle, a tokenizer it could not build, an exit) rejects what waits and what comes after with its
 * error, and says so (`broken`): the engine then tokenizes on the event loop, as before.
 */
export class TokenizerThread {
  private readonly worker: Worker
  private readonly waiting = new Map<number, { resolve: (ids: number[]) => void; reject: (e: Error) => void }>()
  private next = 0
  private failed: Error | null = null
  private closed = false

  constructor(source: TokenizerSource) {
    this.worker = new Worker(workerUrl(), { workerData: source })
    // an idle tokenizer must not keep the process alive (the server's socket does while it listens)
    this.worker.unref()
    this.worker.on('message', (r: TokenizerReply) => {
      const w = this.waiting.get(r.id)
      if (!w) return
      this.waiting.delete(r.id)
      if ('error' in r) w.reject(new Error(r.error))
      else w.resolve(Array.from(r.ids))
    })
    const fail = (e: Error) => {
      this.failed ??= e
      for (const w of this.waiting.values()) w.reject(this.failed)
      this.waiting.clear()
    }
    this.worker.on('error', fail)
    this.worker.on('exit', (code) => fail(new Error(`the tokenizer thread exited (code ${code})`)))
  }

  /** the ids of `text` (no special tokens added, as Tokenizer.encode) */
  encode(text: string): Promise<number[]> {
    if (this.failed) return Promise.reject(this.failed)
    const id = this.next++
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject })
      const request: TokenizerRequest = { id, text }
      this.worker.postMessage(request)
    })
  }

  /** whether the worker failed on its own (not stopped by close): encode rejects from then on */
  get broken(): boolean {
    return this.failed !== null && !this.closed
  }

  /** stops the worker; what waits is rejected */
  async close(): Promise<void> {
    this.closed = true
    await this.worker.terminate()
  }
}
