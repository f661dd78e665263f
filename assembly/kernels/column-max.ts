// Column-wise max of attention probabilities: KVzip's score of a context key is the largest probability
// any reconstruction query gives it (Kim et al. 2025, arXiv 2505.23416, section 3.2; kvpress's
// KVzipPress.score_kvzip takes the amax over the query rows and the group's heads).

/**
 * out[c] = max(out[c], max over r < rows of v(r, c)) for c < count, where v(r, c) = x[r*n + from + c],
 * or, with rowNorm != 0 and/or colWeight != 0 (KVzip+), (x * (1 / rowNorm[r])) * colWeight[c] in
 * float64, rounded to float32 once at the store (rounding is monotonic: the max of the rounded values
 * is the rounded max). Rows are read front to back, so x may be a softmax just written.
 * x [rows][n], rowNorm [rows], colWeight [count], out [count]; from + count <= n.
 */
export function columnMax(x: usize, rows: i32, n: i32, from: i32, count: i32, rowNorm: usize, colWeight: usize, out: usize): void {
  for (let r = 0; r < rows; r++) {
    const row = x + ((<usize>r * <usize>n + <usize>from) << 2)
    if (rowNorm == 0 && colWeight == 0) {
      // the plain score: float32 maxima four columns at a time (softmax rows carry no NaN)
      let c = 0
      for (; c + 4 <= count; c += 4) {
        const o = <usize>c << 2
        v128.store(out + o, f32x4.max(v128.load(out + o), v128.load(row + o)))
      }
      for (; c < count; c++) {
        const o = <usize>c << 2
        const v = load<f32>(row + o)
        if (v > load<f32>(out + o)) store<f32>(out + o, v)
      }
      continue
    }
    const rs: f64 = rowNorm ? 1.0 / <f64>load<f32>(rowNorm + (<usize>r << 2)) : 1.0
    for (let c = 0; c < count; c++) {
      const o = <usize>c << 2
      let v = <f64>load<f32>(row + o) * rs
      if (colWeight) v *= <f64>load<f32>(colWeight + o)
      if (v > <f64>load<f32>(out + o)) store<f32>(out + o, <f32>v)
    }
  }
}
