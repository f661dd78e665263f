/**
 * Streamed text that always adds up to the final text. Each decode step gives the whole decoded text
 * so far; the stream releases only what can no longer change or be cut:
 * - a trailing U+FFFD is held (a multi-byte character split across byte-level tokens decodes to it
 *   until its last byte arrives);
 * - a suffix that could begin a stop string is held until it cannot;
 * - a stop string ends the text at its first occurrence, wherever it starts and ends relative to the
 *   tokens (inside one token, across several).
 * So the released pieces, joined, equal the final text in every case.
 */
export class TextStream {
  /** characters of the text released so far */
  private released = 0
  private readonly longestStop: number
  /** the final text once a stop string was found */
  stoppedText: string | null = null

  constructor(private readonly stop: readonly string[]) {
    this.longestStop = Math.max(0, ...stop.map((s) => s.length))
  }

  /** the text `full` (decoded from every new token so far): the newly released piece, '' if none */
  update(full: string): string {
    // a stop string cannot start before what was released: that text held no start of one
    let cut = -1
    for (const s of this.stop) {
      const at = full.indexOf(s, Math.max(0, this.released - this.longestStop))
      if (at >= 0 && (cut < 0 || at < cut)) cut = at
    }
    if (cut >= 0) {
      this.stoppedText = full.slice(0, cut)
      return this.take(full, Math.max(cut, this.released))
    }
    let safe = full.length
    while (safe > this.released && full.charCodeAt(safe - 1) === 0xfffd) safe--
    safe -= this.heldForStop(full.slice(this.released, safe))
    return this.take(full, safe)
  }

  /** at the end of generation: everything not released yet */
  flush(full: string): string {
    return this.take(this.stoppedText ?? full, (this.stoppedText ?? full).length)
  }

  /** true while some decoded text is held back */
  holding(full: string): boolean {
    return this.released < (this.stoppedText ?? full).length
  }

  private take(full: string, upto: number): string {
    const piece = full.slice(this.released, upto)
    this.released = Math.max(this.released, upto)
    return piece
  }

  /** length of the longest suffix of `tail` that is a proper prefix of a stop string */
  private heldForStop(tail: string): number {
    let held = 0
    for (const s of this.stop) {
      for (let k = Math.min(s.length - 1, tail.length); k > held; k--) {
        if (tail.endsWith(s.slice(0, k))) {
          held = k
          break
        }
      }
    }
    return held
  }
}
