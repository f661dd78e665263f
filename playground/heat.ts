import type { KeptTokens } from '../src/index.js'
import type { HeatMap } from './protocol.js'

/**
 * Sums `onKept` reports into a heat map: per (layer, KV head) and position, the share of reports at
 * which the token was held, or, once a step reports what a selection attended, the share of decode
 * steps at which it was attended (a head that attended densely counts everything it held).
 */
export class HeatAccumulator {
  private readonly kept: Float32Array
  private readonly attended: Float32Array
  private reports = 0
  private steps = 0
  private selects = false

  constructor(readonly layers: number, readonly kvHeads: number, readonly positions: number) {
    this.kept = new Float32Array(layers * kvHeads * positions)
    this.attended = new Float32Array(layers * kvHeads * positions)
  }

  add(k: KeptTokens): void {
    this.reports++
    if (k.stage === 'decode') this.steps++
    if (k.attended) this.selects = true
    for (let l = 0; l < this.layers; l++) {
      for (let h = 0; h < this.kvHeads; h++) {
        const row = (l * this.kvHeads + h) * this.positions
        const held = k.kept[l][h]
        for (const p of held) if (p < this.positions) this.kept[row + p]++
        if (k.stage !== 'decode') continue
        for (const p of k.attended?.[l][h] ?? held) if (p < this.positions) this.attended[row + p]++
      }
    }
  }

  result(): HeatMap {
    const attended = this.selects && this.steps > 0
    const values = attended ? this.attended : this.kept
    const n = attended ? this.steps : this.reports
    for (let i = 0; i < values.length; i++) values[i] /= Math.max(1, n)
    return { layers: this.layers, kvHeads: this.kvHeads, positions: this.positions, measure: attended ? 'attended' : 'kept', values }
  }
}
