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

const COLUMNS = ['policy', 'task', 'length', 'samples', 'accuracy', 'score', 'KV kept / full', 'prefill ms', 'decode ms/tok', 'kernels'] as const

export function resultRows(results: readonly EvalResult[]): string[][] {
  return results.map((r) => [
    r.policy,
    r.task,
    String(r.length),
    String(r.samples),
    r.accuracy.toFixed(2),
    r.score.toFixed(2),
    formatKept(r.kvBytes, r.kvBytesFull),
    r.prefillMs.toFixed(0),
    r.decodeMsPerToken.toFixed(1),
    r.kernels,
  ])
}

/** A plain-text table, columns padded, numbers right-aligned. */
export function formatTable(results: readonly EvalResult[]): string {
  const rows = [COLUMNS.slice() as string[], ...resultRows(results)]
  const widths = COLUMNS.map((_, c) => Math.max(...rows.map((r) => r[c].length)))
  const right = (c: number): boolean => c >= 2 && c < COLUMNS.length - 1
  const line = (r: string[]): string => r.map((cell, c) => (right(c) ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd()
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n')
}
