// Top-k selection by radix select on the float bits: O(n) and exact, where a sort would be O(n log n).
//
// Each float maps to an unsigned key whose order is the float order: positive floats get the sign bit
// set, negative floats are bit-inverted. -0 is folded onto +0 (they compare equal, so the lower index
// wins the tie) and every NaN maps to key 0, below -inf: a NaN is chosen only when fewer than k numbers
// exist, and then by lower index.
//
// Three histogram passes (11 + 11 + 10 bits) find the key T of the k-th largest element. The first pass
// reads all n floats; the elements in its chosen bucket are gathered into `scratch` and the later passes
// only see those. A final pass in index order emits every key > T and the first (k - greater) keys == T,
// which gives ties to the lower index and an ascending output for free.

const BINS = 2048
const hist = memory.data(BINS * 4, 16)

// @ts-ignore: decorator
@inline function sortKey(bits: u32): u32 {
  if ((bits & 0x7fffffff) > 0x7f800000) return 0 // NaN: below everything
  if (bits == 0x80000000) bits = 0 // -0 == +0
  return bits ^ (<u32>(<i32>bits >> 31) | 0x80000000)
}

// @ts-ignore: decorator
@inline function keyAt(x: usize, i: i32): u32 {
  return sortKey(load<u32>(x + (<usize>i << 2)))
}

/**
 * Walks the histogram from the top bucket down to the bucket holding the k-th largest; returns the
 * bucket and leaves in `remaining` how many of the k fall inside it.
 */
let remaining: i32 = 0
function pickBucket(bins: i32, k: i32): i32 {
  let above = 0
  for (let b = bins - 1; b > 0; b--) {
    const c = load<i32>(hist + (<usize>b << 2))
    if (above + c >= k) {
      remaining = k - above
      return b
    }
    above += c
  }
  remaining = k - above
  return 0
}

export function topK(x: usize, n: i32, k: i32, outIdx: usize, scratch: usize): void {
  // pass 1: top 11 bits over all n
  memory.fill(hist, 0, BINS * 4)
  for (let i = 0; i < n; i++) {
    const h = hist + (<usize>(keyAt(x, i) >> 21) << 2)
    store<i32>(h, load<i32>(h) + 1)
  }
  const b1 = <u32>pickBucket(BINS, k)
  let need = remaining
  let m = 0
  for (let i = 0; i < n; i++) {
    if (keyAt(x, i) >> 21 == b1) {
      store<i32>(scratch + (<usize>m << 2), i)
      m++
    }
  }
  // pass 2: next 11 bits among the candidates, compacted in place
  memory.fill(hist, 0, BINS * 4)
  for (let j = 0; j < m; j++) {
    const h = hist + (<usize>((keyAt(x, load<i32>(scratch + (<usize>j << 2))) >> 10) & 0x7ff) << 2)
    store<i32>(h, load<i32>(h) + 1)
  }
  const b2 = <u32>pickBucket(BINS, need)
  need = remaining
  let m2 = 0
  for (let j = 0; j < m; j++) {
    const i = load<i32>(scratch + (<usize>j << 2))
    if (((keyAt(x, i) >> 10) & 0x7ff) == b2) {
      store<i32>(scratch + (<usize>m2 << 2), i)
      m2++
    }
  }
  // pass 3: low 10 bits
  memory.fill(hist, 0, 1024 * 4)
  for (let j = 0; j < m2; j++) {
    const h = hist + (<usize>(keyAt(x, load<i32>(scratch + (<usize>j << 2))) & 0x3ff) << 2)
    store<i32>(h, load<i32>(h) + 1)
  }
  const b3 = <u32>pickBucket(1024, need)
  let ties = remaining
  const threshold: u32 = (b1 << 21) | (b2 << 10) | b3
  // emit in index order: every key above the threshold, and the first `ties` keys equal to it
  let w = 0
  for (let i = 0; i < n && w < k; i++) {
    const key = keyAt(x, i)
    if (key > threshold || (key == threshold && ties > 0)) {
      if (key == threshold) ties--
      store<i32>(outIdx + (<usize>w << 2), i)
      w++
    }
  }
}
