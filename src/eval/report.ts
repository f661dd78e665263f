import { join } from 'node:path'
import { checkOutputPath, makeOutputDir, writeOutputFile } from './output.js'
import { formatBytes, legendEntries, resultRows } from './format.js'
import { barChart, esc, H, M, PALETTE, REPORT_CSS, W } from './charts.js'
import { policyLabels, specFamily } from './labels.js'
import { checkResults, type EvalResult } from './results.js'

/**
 * A self-contained HTML report: inline SVG charts and inline CSS, no script, no network, so it opens
 * from the file system anywhere. Charts: accuracy against the share of KV kept (one per task and
 * length, a point per policy setting, settings of one policy joined by a line); bars of KV memory,
 * prefill time and decode time per policy setting (averaged over the cells it ran).
 */
export interface ReportMeta {
  title?: string
  command?: string
  model?: string
  backend?: string
  date?: string
  seed?: number
}

const family = specFamily

/** the distinct values of a per-cell field (comma-separated within a cell too), in order; '' where none has it */
const distinct = (results: readonly EvalResult[], field: (r: EvalResult) => string | undefined): string =>
  [...new Set(results.flatMap((r) => (field(r) ?? '').split(',')).filter(Boolean))].join(', ')
const LOOPS: Record<string, string> = { with: 'in the prompt', after: 'after the compressed context' }

function colours(results: readonly EvalResult[]): Map<string, string> {
  const names = [...new Set(results.map((r) => family(r.policy)))]
  return new Map(names.map((n, i) => [n, PALETTE[i % PALETTE.length]]))
}

function axes(xLabel: string, yLabel: string, yTicks: { v: number; label: string }[], y: (v: number) => number): string {
  const x0 = M.left, x1 = W - M.right, y1 = H - M.bottom
  const ticks = yTicks
    .map((t) => `<line x1="${x0 - 4}" x2="${x1}" y1="${y(t.v)}" y2="${y(t.v)}" class="grid"/><text x="${x0 - 6}" y="${y(t.v) + 4}" text-anchor="end">${esc(t.label)}</text>`)
    .join('')
  return `<line x1="${x0}" x2="${x1}" y1="${y1}" y2="${y1}" class="axis"/><line x1="${x0}" x2="${x0}" y1="${M.top}" y2="${y1}" class="axis"/>${ticks}` +
    `<text x="${(x0 + x1) / 2}" y="${H - 6}" text-anchor="middle">${esc(xLabel)}</text>` +
    `<text transform="translate(12 ${(M.top + y1) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`
}

/** accuracy (y) against the share of the full cache kept (x), for one task at one length */
export function accuracyChart(results: readonly EvalResult[], task: string, length: number, palette: Map<string, string>): string {
  const cell = results.filter((r) => r.task === task && r.length === length)
  const x = (v: number): number => M.left + v * (W - M.left - M.right)
  const y = (v: number): number => H - M.bottom - v * (H - M.top - M.bottom)
  const kept = (r: EvalResult): number => (r.kvBytesFull > 0 ? Math.min(1, r.kvBytes / r.kvBytesFull) : 1)
  const xTicks = [0, 0.25, 0.5, 0.75, 1]
    .map((v) => `<line x1="${x(v)}" x2="${x(v)}" y1="${H - M.bottom}" y2="${H - M.bottom + 4}" class="axis"/><text x="${x(v)}" y="${H - M.bottom + 16}" text-anchor="middle">${v * 100}%</text>`)
    .join('')
  const lines = [...new Set(cell.map((r) => family(r.policy)))]
    .map((f) => cell.filter((r) => family(r.policy) === f).sort((a, b) => kept(a) - kept(b)))
    .filter((rs) => rs.length > 1)
    .map((rs) => `<polyline class="series" fill="none" stroke="${palette.get(family(rs[0].policy))}" points="${rs.map((r) => `${x(kept(r)).toFixed(1)},${y(r.accuracy).toFixed(1)}`).join(' ')}"/>`)
    .join('')
  // policies that land on the same spot stay visible: earlier policies are drawn as larger rings behind
  const families = [...palette.keys()]
  const radius = (r: EvalResult): number => 4 + 2 * (families.length - 1 - families.indexOf(family(r.policy)))
  const labels = policyLabels(results.map((r) => r.policy))
  // the 95% interval of each accuracy as a whisker: with few samples a cell's accuracy is uncertain
  const whiskers = cell
    .map((r) => `<line class="interval" x1="${x(kept(r)).toFixed(1)}" x2="${x(kept(r)).toFixed(1)}" y1="${y(r.accuracyInterval[0]).toFixed(1)}" y2="${y(r.accuracyInterval[1]).toFixed(1)}" stroke="${palette.get(family(r.policy))}"/>`)
    .join('')
  const points = cell
    .slice()
    .sort((a, b) => radius(b) - radius(a))
    .map((r) => `<circle class="point" data-policy="${esc(r.policy)}" cx="${x(kept(r)).toFixed(1)}" cy="${y(r.accuracy).toFixed(1)}" r="${radius(r)}" fill="${palette.get(family(r.policy))}" fill-opacity="0.45" stroke="${palette.get(family(r.policy))}" stroke-width="1.5"><title>${esc(labels.get(r.policy)!.label)} (${esc(r.policy)}): accuracy ${r.accuracy.toFixed(2)} (95% CI ${r.accuracyInterval[0].toFixed(2)}-${r.accuracyInterval[1].toFixed(2)}, ${r.samples} samples), ${(100 * kept(r)).toFixed(0)}% of the KV kept</title></circle>`)
    .join('')
  const yTicks = [0, 0.25, 0.5, 0.75, 1].map((v) => ({ v, label: v.toFixed(2) }))
  return `<figure><figcaption>${esc(task)} at ${length} tokens</figcaption><svg class="chart accuracy-chart" data-task="${esc(task)}" data-length="${length}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img">` +
    axes('KV kept (share of the full cache)', 'accuracy', yTicks, y) + xTicks + lines + whiskers + points + '</svg></figure>'
}

/** per policy setting, the mean of a field over every cell it ran */
function perPolicy(results: readonly EvalResult[], f: (r: EvalResult) => number): { policy: string; value: number }[] {
  const policies = [...new Set(results.map((r) => r.policy))]
  return policies.map((policy) => {
    const rs = results.filter((r) => r.policy === policy)
    return { policy, value: rs.reduce((s, r) => s + f(r), 0) / rs.length }
  })
}

export function renderReport(results: readonly EvalResult[], meta: ReportMeta = {}): string {
  checkResults(results, 'renderReport')
  const palette = colours(results)
  const cells = [...new Map(results.map((r) => [`${r.task}@${r.length}`, { task: r.task, length: r.length }])).values()]
  const accuracy = cells.map((c) => accuracyChart(results, c.task, c.length, palette)).join('\n')
  const colour = (policy: string): string => palette.get(family(policy))!
  const labels = policyLabels(results.map((r) => r.policy))
  const bar = (policy: string, value: number, text: string) => ({ spec: policy, label: labels.get(policy)!.label, value, colour: colour(policy), text })
  const memory = barChart('memory', 'KV-cache memory at the end of generation (mean over cells)',
    perPolicy(results, (r) => r.kvBytes).map(({ policy, value }) => {
      const full = perPolicy(results.filter((r) => r.policy === policy), (r) => r.kvBytesFull)[0].value
      return bar(policy, value, `${formatBytes(value)} (${Math.round((100 * value) / full)}% of full)`)
    }))
  const prefill = barChart('prefill', 'Prefill time, ms (mean over cells)',
    perPolicy(results, (r) => r.prefillMs).map(({ policy, value }) => bar(policy, value, `${value.toFixed(0)} ms`)))
  const decode = barChart('decode', 'Decode time per token, ms (mean over cells)',
    perPolicy(results, (r) => r.decodeMsPerToken).map(({ policy, value }) => bar(policy, value, `${value.toFixed(1)} ms`)))
  const familyLabel = new Map([...labels.values()].map((l) => [l.family, l.familyLabel]))
  const legend = [...palette].map(([name, c]) => `<span class="key" title="${esc(name)}"><span class="swatch" style="background:${c}"></span>${esc(familyLabel.get(name) ?? name)}</span>`).join(' ')
  const spelled = legendEntries(results)
  const legendList = spelled.length ? `<dl class="legend">${spelled.map(([l, f]) => `<dt>${esc(l)}</dt><dd><code>${esc(f)}</code></dd>`).join('')}</dl>` : ''
  const head = ['policy', 'task', 'length', 'samples', 'accuracy', '95% CI', 'score', 'KV kept', 'prefill ms', 'decode ms/tok', 'kernels']
  const table = `<table><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>` +
    resultRows(results).map((r, i) => `<tr>${r.map((c, j) => `<td${j === 0 ? ` title="${esc(results[i].policy)}"` : ''}>${esc(c)}</td>`).join('')}</tr>`).join('') + '</tbody></table>'
  const facts = [
    meta.model && `model <code>${esc(meta.model)}</code>`,
    meta.backend && `backend ${esc(meta.backend)}`,
    `kernels ${esc(distinct(results, (r) => r.kernels))}`,
    // "KV kept" is a share of a cache in this element type, and the loop decides what the votes see:
    // npm start's two pages (float16, report/ and report/question-after/) said neither
    distinct(results, (r) => r.kvDtype) && `KV ${esc(distinct(results, (r) => r.kvDtype))}`,
    distinct(results, (r) => r.question) && `question ${esc(distinct(results, (r) => r.question).split(', ').map((q) => LOOPS[q] ?? q).join(', '))}`,
    meta.seed !== undefined && `seed ${meta.seed}`,
    meta.date && esc(meta.date),
  ].filter(Boolean).join(' · ')
  const title = esc(meta.title ?? 'kvkit evaluation')
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<style>
${REPORT_CSS}</style></head><body>
<h1>${title}</h1>
<p>${facts}</p>${meta.command ? `\n<p><code>${esc(meta.command)}</code></p>` : ''}
<p>${legend}</p>
${legendList}
<p>Accuracy is the share of a cell's samples answered exactly; whiskers and the 95% CI column give its Wilson interval.</p>
<h2>Accuracy against KV kept</h2>
<div class="charts">
${accuracy}
</div>
<h2>Memory and time</h2>
<div class="charts">
${memory}
${prefill}
${decode}
</div>
<h2>Results</h2>
${table}
</body></html>
`
}

/**
 * Writes DIR/index.html (DIR made) and returns its path. Throws EvalOutputError naming the path where
 * it cannot be written (DIR a file, no permission).
 */
export function writeReport(dir: string, results: readonly EvalResult[], meta: ReportMeta = {}): string {
  checkOutputPath(dir, 'report')
  const html = renderReport(results, meta)
  makeOutputDir(dir, 'report')
  const file = join(dir, 'index.html')
  writeOutputFile(file, html, 'report')
  return file
}
