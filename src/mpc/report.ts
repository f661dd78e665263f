/**
 * Cost tables for people: per operator (inclusive), and per decode step for several networks.
 */
import { LAN, WAN, modelledSeconds, type Cost, type CostLog, type NetworkModel } from './cost.js'

export function formatMB(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 3 : 2)
}

/** A plain text table; columns after the first are right-aligned. */
export function textTable(header: string[], rows: string[][]): string {
  const all = [header, ...rows]
  const widths = header.map((_, c) => Math.max(...all.map((r) => r[c].length)))
  const line = (r: string[]): string => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ').trimEnd()
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

export function costColumns(c: Cost, nets: NetworkModel[]): string[] {
  return [String(c.rounds), formatMB(c.bytesSent), formatMB(c.offlineBytes), ...nets.map((n) => (modelledSeconds(c, n) * 1000).toFixed(1))]
}

/**
 * Per operator, inclusive of the operators it runs (softmax includes its max, exp and reciprocal), for
 * one party: calls, rounds, MiB sent, MiB of offline material received, modelled communication ms.
 */
export function operatorTable(log: CostLog, nets: NetworkModel[] = [LAN, WAN]): string {
  const rows = [...log.byOp.entries()].map(([name, c]) => [name, String(c.calls), ...costColumns(c, nets)])
  rows.push(['total (each round and byte once)', '', ...costColumns(log.total, nets)])
  return textTable(['operator', 'calls', 'rounds', 'sent MiB', 'offline MiB', ...nets.map((n) => `${n.name} ms`)], rows)
}
