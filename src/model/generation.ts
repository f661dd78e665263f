import type { GeneratedToken, GenerateResult, Generation } from './types.js'

/**
 * A Generation fed by a producer: tokens are queued as they come, consumers iterate them, and `result`
 * settles when the producer ends. The producer runs whether or not anyone iterates; it polls
 * `cancelled()` between its steps, which turns true once a loop left early and no loop is iterating
 * (a loop leaving early cannot know whether another still wants the tokens: the last one to go decides).
 */
export class StreamingGeneration implements Generation {
  readonly result: Promise<GenerateResult>
  private readonly queue: GeneratedToken[] = []
  // every waiting iterator: two loops over one generation each wait here (one slot woke only the last)
  private waiters: (() => void)[] = []
  private finished = false
  private failure: unknown = undefined
  // loops iterating now, and whether the last of them left early
  private iterating = 0
  private leftEarly = false

  constructor(producer: (emit: (t: GeneratedToken) => void, cancelled: () => boolean) => Promise<GenerateResult>) {
    this.result = producer(
      (t) => {
        this.queue.push(t)
        this.poke()
      },
      () => this.leftEarly && this.iterating === 0,
    ).then(
      (r) => {
        this.finished = true
        this.poke()
        return r
      },
      (e) => {
        this.finished = true
        this.failure = e ?? new Error('generation failed')
        this.poke()
        throw e
      },
    )
    // a caller who only iterates still sees the error there; this keeps it from also surfacing as unhandled
    this.result.catch(() => {})
  }

  private poke(): void {
    for (const w of this.waiters.splice(0)) w()
  }

  async *[Symbol.asyncIterator](): AsyncIterator<GeneratedToken> {
    let i = 0
    let ended = false
    this.iterating++
    try {
      for (;;) {
        if (i < this.queue.length) {
          yield this.queue[i++]
          continue
        }
        if (this.finished) {
          ended = true
          if (this.failure !== undefined) throw this.failure
          return
        }
        await new Promise<void>((r) => this.waiters.push(r))
      }
    } finally {
      // reached by the loop's return() (a break) at a yield, or by the end
      this.iterating--
      if (!ended) this.leftEarly = true
    }
  }
}
