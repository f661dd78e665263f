import { policyLabels } from './labels.js'
import type { EvalResult } from './results.js'

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '-'
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(2)} MiB`
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`
  return `${Math.round(bytes)} B`
}

/** "12.0 KiB / 48.0 KiB (25%)" */
export function formatKept(kv: number, full: number): string {
  const pct = full > 0 ? ` (${Math.round((100 * kv) / full)}%)` : ''
  return `${formatBytes(kv)} / ${formatBytes(full)}${pct}`
}

const COLUMNS = ['policy', 'task', 'length', 'samples', 'accuracy', '95% CI', 'score', 'KV kept', 'prefill ms', 'decode ms/tok', 'kernels'] as const

/** "2.00 MiB (50%)": the bytes kept and their share of the full cache, short enough for one line */
export function formatKeptShort(kv: number, full: number): string {
  return `${formatBytes(kv)}${full > 0 ? ` (${Math.round((100 * kv) / full)}%)` : ''}`
}

export function resultRows(results: readonly EvalResult[]): string[][] {
  const labels = policyLabels(results.map((r) => r.policy))
  return results.map((r) => [
    labels.get(r.policy)!.label,
    r.task,
    String(r.length),
    String(r.samples),
    r.accuracy.toFixed(2),
    `${r.accuracyInterval[0].toFixed(2)}-${r.accuracyInterval[1].toFixed(2)}`,
    r.score.toFixed(2),
    formatKeptShort(r.kvBytes, r.kvBytesFull),
    r.prefillMs.toFixed(0),
    r.decodeMsPerToken.toFixed(1),
    r.kernels,
  ])
}

/** label -> full setting, for the settings whose label does not spell out their spec */
export function legendEntries(results: readonly EvalResult[]): [string, string][] {
  const seen = new Map<string, string>()
  for (const l of policyLabels(results.map((r) => r.policy)).values()) if (l.familyLabel !== l.family) seen.set(l.familyLabel, l.family)
  return [...seen]
}

/** A plain-text table, columns padded, numbers right-aligned; under it, what each short label stands for. */
export function formatTable(results: readonly EvalResult[]): string {
  const rows = [COLUMNS.slice() as string[], ...resultRows(results)]
  const widths = COLUMNS.map((_, c) => Math.max(...rows.map((r) => r[c].length)))
  const right = (c: number): boolean => c >= 2 && c < COLUMNS.length - 1
  const line = (r: string[]): string => r.map((cell, c) => (right(c) ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd()
  const legend = legendEntries(results).map(([label, family]) => `  ${label} = ${family}`)
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line), ...(legend.length ? ['', 'policies:', ...legend] : [])].join('\n')
}
