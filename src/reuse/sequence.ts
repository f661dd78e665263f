import type { PagedKVCache } from '../cache/paged-cache.js'
import type { LlamaModel } from '../model/model.js'
import type { KVReuse, ReuseHandle } from '../model/types.js'
import { abortCheck, checkOptionNames, ReuseError } from './errors.js'
import { shownValue } from '../model/errors.js'

export interface SequenceOptions {
  /** tokens per KV page (default 64) */
  pageTokens?: number
}

const SEQUENCE_OPTIONS: Record<keyof SequenceOptions, true> = { pageTokens: true }

/**
 * A conversation's KV state across requests (node-llama-cpp's sessions, llama.cpp's slots): the tokens
 * so far and a cache holding a prefix of them. `generate(prompt, { reuse: seq })` runs the history
 * followed by the prompt, prefills only what the cache lacks, and on success commits the prompt and the
 * answer; a failed or aborted request rolls back to the last committed token. `fork()` branches
 * copy-on-write (`n > 1` answers to one prompt, speculative branches): pages are shared until written.
 */
export class Sequence implements KVReuse {
  private history: number[]
  private committedTokens: number
  // what runs on the sequence now (a feed or a generation), else false
  private busy: false | 'a feed' | 'a generation' = false
  private disposed = false

  private constructor(
    readonly model: LlamaModel,
    readonly cache: PagedKVCache,
    history: number[],
  ) {
    this.history = history
    this.committedTokens = history.length
  }

  static create(model: LlamaModel, options: SequenceOptions = {}): Sequence {
    // checked here: a missing model would otherwise fail as a TypeError inside newCache
    if (typeof (model as Partial<LlamaModel> | null)?.newCache !== 'function') throw new ReuseError(`Sequence.create: model must be a loaded model (loadModel), got ${model === null ? 'null' : typeof model}`)
    checkOptionNames('Sequence.create', options, SEQUENCE_OPTIONS)
    const pt = options.pageTokens ?? 64
    if (!(Number.isInteger(pt) && pt >= 1 && pt <= 4096)) throw new ReuseError(`Sequence: pageTokens must be an integer in [1, 4096], got ${shownValue(pt)}`)
    return new Sequence(model, model.newCache('post-rope', pt, 'float32'), [])
  }

  /** every token of the sequence so far (the last generated one may not be in the cache yet) */
  get tokens(): readonly number[] {
    return this.history
  }

  /** tokens kept by `rollback()`: the history as of the last `commit()` or finished request */
  get committed(): number {
    return this.committedTokens
  }

  /** tokens whose KV the cache holds (history[0, cachedTokens)); 0 once disposed (it holds none) */
  get cachedTokens(): number {
    return this.disposed ? 0 : this.cache.length(0, 0)
  }

  private usable(what: string): void {
    if (this.disposed) throw new ReuseError(`Sequence.${what}: the sequence was disposed`)
    // fork() is the way to a second generation, but not while one runs: the fork would copy a half-written turn
    if (this.busy) throw new ReuseError(`Sequence.${what}: ${this.busy} is running on this sequence; wait for it to end${what === 'generate' ? ', or run the other on a fork() made before it' : ''}`)
  }

  /**
   * Runs tokens through the model after the history (a system prompt, a document) without generating,
   * uncommitted until `commit()`. Resolves with the logits [vocab] after the last token. The prefill runs
   * chunk by chunk on later turns of the event loop: `signal` aborts between chunks (the promise rejects
   * with its reason) and the sequence is left as it was before the call. Bad ids, options or length
   * throw at the call (ReuseError, ModelInputError), before any work; the sequence is busy until it ends.
   */
  feed(ids: readonly number[], options: { signal?: AbortSignal } = {}): Promise<Float32Array> {
    this.usable('feed')
    this.model.checkIds(ids, 'Sequence.feed')
    checkOptionNames('Sequence.feed', options, { signal: true })
    const check = abortCheck('Sequence.feed', options.signal)
    const all = [...this.history, ...ids]
    if (all.length > this.model.config.maxPositions) throw new ReuseError(`Sequence.feed: ${all.length} tokens exceed max_position_embeddings ${this.model.config.maxPositions}`)
    const from = this.cachedTokens
    const vocab = this.model.config.vocab
    const logits = new Float32Array((all.length - from) * vocab)
    const running = this.model.prefillChunked(all.slice(from), this.cache, from, check, logits)
    this.busy = 'a feed'
    const end = (ok: boolean) => {
      this.busy = false
      // disposed while the feed ran: its cache was left to it until now
      if (this.disposed) this.cache.dispose()
      else if (ok) this.history = all
      // the rows of the chunks done go: the cache holds the history's prefix again
      else this.cache.rollback(from)
    }
    return running.then(
      () => {
        end(true)
        return logits.slice(logits.length - vocab)
      },
      (e) => {
        end(false)
        throw e
      },
    )
  }

  /** makes the whole history the point `rollback()` returns to */
  commit(): void {
    this.usable('commit')
    this.committedTokens = this.history.length
  }

  /** drops every token after the first `tokens` (default: the last commit), from the history and the cache */
  rollback(tokens = this.committedTokens): void {
    this.usable('rollback')
    if (!(Number.isInteger(tokens) && tokens >= 0 && tokens <= this.history.length)) {
      throw new ReuseError(`Sequence.rollback: tokens must be an integer in [0, ${this.history.length}], got ${shownValue(tokens)}`)
    }
    this.cut(tokens)
  }

  private cut(tokens: number): void {
    this.cache.rollback(Math.min(tokens, this.cachedTokens))
    this.history = this.history.slice(0, tokens)
    this.committedTokens = Math.min(this.committedTokens, tokens)
  }

  /** a branch sharing every page (copy-on-write), with the same history and commit point */
  fork(): Sequence {
    this.usable('fork')
    const f = new Sequence(this.model, this.cache.fork(), this.history.slice())
    f.committedTokens = this.committedTokens
    return f
  }

  open(ids: readonly number[], model: LlamaModel): ReuseHandle {
    this.usable('generate')
    if (model !== this.model) throw new ReuseError('Sequence: generate was called on another model than the sequence was made for')
    this.busy = 'a generation'
    const all = [...this.history, ...ids]
    const cachedTokens = this.cachedTokens
    return {
      cache: this.cache,
      ids: all,
      cachedTokens,
      prefilled: () => {},
      close: (generated, ok) => {
        this.busy = false
        // disposed while this request ran: its cache was left to it until now
        if (this.disposed) return this.cache.dispose()
        if (ok) {
          this.history = [...all, ...generated]
          this.committedTokens = this.history.length
        } else this.cut(this.committedTokens)
      },
    }
  }

  /**
   * Frees the sequence's cache; any later use throws ReuseError. A generation running on it finishes
   * first (its cache is freed when it ends), instead of failing on freed pages.
   */
  dispose(): void {
    if (this.disposed) return
    this.disposed = true
    if (!this.busy) this.cache.dispose()
  }
}
