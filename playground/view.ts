import { esc } from '../src/eval/charts.js'
import type { PromptToken } from './protocol.js'

const STRIP_W = 420, STRIP_H = 14, MAX_BINS = 210

/** one (layer, head) row of the heat map as an SVG strip: a cell per bin of positions, shaded by its mean */
export function heatStrip(row: Float32Array, colour: string, needles: number[]): string {
  const bins = Math.min(MAX_BINS, row.length)
  const w = STRIP_W / bins
  let cells = ''
  for (let b = 0; b < bins; b++) {
    const a = Math.floor((b * row.length) / bins), z = Math.max(a + 1, Math.floor(((b + 1) * row.length) / bins))
    let s = 0
    for (let p = a; p < z; p++) s += row[p]
    cells += `<rect x="${(b * w).toFixed(2)}" y="0" width="${(w + 0.1).toFixed(2)}" height="${STRIP_H}" fill="${colour}" fill-opacity="${(s / (z - a)).toFixed(3)}"/>`
  }
  const ticks = needles.map((p) => `<line class="axis" x1="${((p + 0.5) * STRIP_W / row.length).toFixed(1)}" x2="${((p + 0.5) * STRIP_W / row.length).toFixed(1)}" y1="${STRIP_H}" y2="${STRIP_H + 4}"/>`).join('')
  return `<svg class="strip" viewBox="0 0 ${STRIP_W} ${STRIP_H + 4}" width="${STRIP_W}" height="${STRIP_H + 4}" aria-hidden="true"><rect class="grid" x="0" y="0" width="${STRIP_W}" height="${STRIP_H}" fill="none"/>${cells}${ticks}</svg>`
}

/** the prompt's tokens, each shaded by its share in the chosen head's row (needle tokens underlined) */
export function overlayTokens(tokens: PromptToken[], row: Float32Array, colour: string, measure: string): string {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16))
  return tokens
    .map((t, p) => {
      const v = row[p] ?? 0
      return `<span class="tok${t.needle ? ' needle' : ''}${v > 0 ? ' held' : ''}" data-p="${p}" style="background:rgba(${r},${g},${b},${(0.55 * v).toFixed(3)})" title="position ${p}: ${measure} ${Math.round(100 * v)}%">${esc(t.text)}</span>`
    })
    .join('')
}
