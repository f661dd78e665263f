import { rowAt } from './simd'

// Page and chunk summaries of keys, for the page-level selection policies (Quest-style min/max bounds,
// chunk-mean scoring). A summary page of `page` tokens is independent of the storage pageTokens.
// Channels run four at a time; the rows of a summary page are folded into the output row in place.

/** out[p][c] = min and max over rows of summary page p of channel c. */
export function pageMinMax(table: usize, pageTokens: i32, n: i32, d: i32, page: i32, outMin: usize, outMax: usize): void {
  const pages = (n + page - 1) / page
  const bytes = <usize>d << 2
  for (let p = 0; p < pages; p++) {
    const lo = outMin + <usize>p * bytes
    const hi = outMax + <usize>p * bytes
    const first = p * page
    const end = min(n, first + page)
    const r0 = rowAt(table, pageTokens, d, first)
    memory.copy(lo, r0, bytes)
    memory.copy(hi, r0, bytes)
    for (let i = first + 1; i < end; i++) {
      const r = rowAt(table, pageTokens, d, i)
      let c = 0
      for (; c + 4 <= d; c += 4) {
        const o = <usize>c << 2
        const v = v128.load(r + o)
        v128.store(lo + o, f32x4.min(v128.load(lo + o), v))
        v128.store(hi + o, f32x4.max(v128.load(hi + o), v))
      }
      for (; c < d; c++) {
        const o = <usize>c << 2
        const v = load<f32>(r + o)
        store<f32>(lo + o, min(load<f32>(lo + o), v))
        store<f32>(hi + o, max(load<f32>(hi + o), v))
      }
    }
  }
}

/** out[p][c] = mean over rows of chunk p of channel c (the last chunk averages the rows it has). */
export function chunkMeans(table: usize, pageTokens: i32, n: i32, d: i32, chunk: i32, out: usize): void {
  const chunks = (n + chunk - 1) / chunk
  const bytes = <usize>d << 2
  for (let p = 0; p < chunks; p++) {
    const acc = out + <usize>p * bytes
    const first = p * chunk
    const end = min(n, first + chunk)
    memory.fill(acc, 0, bytes)
    for (let i = first; i < end; i++) {
      const r = rowAt(table, pageTokens, d, i)
      let c = 0
      for (; c + 4 <= d; c += 4) {
        const o = <usize>c << 2
        v128.store(acc + o, f32x4.add(v128.load(acc + o), v128.load(r + o)))
      }
      for (; c < d; c++) {
        const o = <usize>c << 2
        store<f32>(acc + o, load<f32>(acc + o) + load<f32>(r + o))
      }
    }
    const cnt = <f32>(end - first)
    const vc = f32x4.splat(cnt)
    let c = 0
    for (; c + 4 <= d; c += 4) {
      const o = acc + (<usize>c << 2)
      v128.store(o, f32x4.div(v128.load(o), vc))
    }
    for (; c < d; c++) {
      const o = acc + (<usize>c << 2)
      store<f32>(o, load<f32>(o) / cnt)
    }
  }
}
