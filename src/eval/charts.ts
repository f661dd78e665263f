/**
 * The eval report's chart pieces and style (inline SVG, no script), shared with the playground page
 * (issue 20) so both look alike. No `node:` imports: the page bundles this module.
 */

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f']
export const W = 420, H = 260, M = { left: 48, right: 24, top: 24, bottom: 40 }

export const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

/** one horizontal bar per policy setting */
export function barChart(kind: string, title: string, rows: { spec: string; label: string; value: number; colour: string; text: string }[]): string {
  const rowH = 22, labelW = 150, width = 540
  const height = M.top + rows.length * rowH + 8
  const max = Math.max(...rows.map((r) => r.value), 1e-9)
  const bars = rows
    .map((r, i) => {
      const y = M.top + i * rowH
      const w = Math.max(1, (r.value / max) * (width - labelW - 170))
      return `<text x="${labelW - 6}" y="${y + 14}" text-anchor="end"><title>${esc(r.spec)}</title>${esc(r.label)}</text>` +
        `<rect class="bar" data-policy="${esc(r.spec)}" x="${labelW}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${r.colour}"><title>${esc(r.spec)}: ${esc(r.text)}</title></rect>` +
        `<text x="${labelW + w + 6}" y="${y + 14}">${esc(r.text)}</text>`
    })
    .join('')
  return `<figure><figcaption>${esc(title)}</figcaption><svg class="chart bar-chart" data-kind="${kind}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img">${bars}</svg></figure>`
}

/** the report's stylesheet: body text, charts (axes, grid, series, bars), legend and tables */
export const REPORT_CSS = `body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
.charts{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0}figcaption{font-weight:600;margin-bottom:4px}
svg text{font-size:11px;fill:#333}.axis{stroke:#555}.grid{stroke:#ddd}.series{stroke-width:1.5}
.key{margin-right:12px}.swatch{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
.interval{stroke-width:1.5;stroke-opacity:0.6}.legend{display:grid;grid-template-columns:max-content auto;gap:2px 12px}.legend dd{margin:0}
td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}code{font-size:12px}
`
