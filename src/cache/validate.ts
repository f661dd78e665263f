import type { Decision, HeadDecision } from './types.js'
import { CacheError } from './errors.js'

export interface HeadShape {
  /** tokens stored */
  n: number
  /** rows of the channel-pruned prefix (0 if none) */
  pruned: number
}

function isInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x)
}

/**
 * Token positions are whole numbers >= 0 in an Int32Array: a plain array or a Float32Array would be
 * truncated on the way in (1.5 becoming 1), so they are refused, as are fractions written into one.
 */
export function checkPositions(where: string, positions: unknown): void {
  if (!(positions instanceof Int32Array)) {
    const bad = Array.isArray(positions) || ArrayBuffer.isView(positions) ? Array.from(positions as ArrayLike<number>).find((p) => !(Number.isInteger(p) && p >= 0)) : undefined
    throw new CacheError(`${where}: positions must be an Int32Array of whole positions >= 0, got ${positions?.constructor?.name ?? typeof positions}${bad !== undefined ? ` holding ${bad}` : ''}`)
  }
  for (let i = 0; i < positions.length; i++) if (positions[i] < 0) throw new CacheError(`${where}: positions[${i}] = ${positions[i]} is negative`)
}

/** whether `a` is an Int32Array strictly ascending with its ends inside [0, n): one compare a slot */
function ascendingIn(a: unknown, n: number): a is Int32Array {
  if (!(a instanceof Int32Array)) return false
  if (a.length === 0) return true
  if (!(a[0] >= 0 && a[a.length - 1] < n)) return false
  let i = 1
  while (i < a.length && a[i] > a[i - 1]) i++
  return i === a.length
}

function checkSlots(where: string, a: unknown, n: number, ascending: boolean): Int32Array {
  if (!(a instanceof Int32Array)) throw new CacheError(`${where} must be an Int32Array, got ${a === null ? 'null' : typeof a}`)
  // a strictly ascending list is in range when its ends are (a one-shot compaction checks every kept slot
  // of every head, mostly before V8 optimises this); the loop below names the error
  if (ascending && ascendingIn(a, n)) return a
  for (let i = 0; i < a.length; i++) {
    const s = a[i]
    if (s < 0 || s >= n) throw new CacheError(`${where}[${i}] = ${s} is outside [0, ${n})`)
    if (ascending && i > 0 && s <= a[i - 1]) {
      throw new CacheError(`${where} must be strictly ascending without duplicates: [${i - 1}] = ${a[i - 1]}, [${i}] = ${s}`)
    }
  }
  return a
}

/** the (layer, head) a decision entry names, checked in range and not seen before (`seen`: one flag a head) */
function headShape(at: string, x: { layer: number; head: number }, layers: number, kvHeads: number, seen: Uint8Array, shape: (layer: number, head: number) => HeadShape): HeadShape {
  if (!isInt(x.layer) || x.layer < 0 || x.layer >= layers) throw new CacheError(`${at}.layer = ${x.layer} is outside [0, ${layers})`)
  if (!isInt(x.head) || x.head < 0 || x.head >= kvHeads) throw new CacheError(`${at}.head = ${x.head} is outside [0, ${kvHeads})`)
  const key = x.layer * kvHeads + x.head
  if (seen[key]) throw new CacheError(`${at}: (layer ${x.layer}, head ${x.head}) appears twice in the decision`)
  seen[key] = 1
  return shape(x.layer, x.head)
}

/**
 * Checks a whole decision against the cache's shape before anything changes: every index in range,
 * ascending, no duplicates; merges, extra tokens and channel lists well formed. Throws a CacheError that
 * names the bad value.
 */
export function validateDecision(decision: Decision, layers: number, kvHeads: number, headDim: number, shape: (layer: number, head: number) => HeadShape): void {
  if (!decision || !Array.isArray(decision.heads)) throw new CacheError('apply: decision.heads must be an array')
  const seen = new Uint8Array(layers * kvHeads)
  if (decision.evictions !== undefined && !Array.isArray(decision.evictions)) throw new CacheError('apply: decision.evictions must be an array when given')
  const evictions = decision.evictions ?? []
  for (let i = 0; i < evictions.length; i++) {
    const ev = evictions[i]
    const { n } = headShape(`apply: evictions[${i}]`, ev, layers, kvHeads, seen, shape)
    if (!ascendingIn(ev.evict, n)) checkSlots(`apply: evictions[${i}].evict`, ev.evict, n, true)
  }
  // indexed loops and messages built only for an error: this runs once a head, mostly before V8 optimises it
  const heads = decision.heads
  for (let i = 0; i < heads.length; i++) {
    const hd = heads[i]
    const { n, pruned } = headShape(`apply: heads[${i}]`, hd, layers, kvHeads, seen, shape)
    if (!ascendingIn(hd.keep, n)) checkSlots(`apply: heads[${i}].keep`, hd.keep, n, true)
    if (hd.merges === undefined && hd.extra === undefined && !hd.keyChannels) continue
    checkHeadExtras(`apply: heads[${i}]`, hd, n, pruned, headDim)
  }
}

/** a head decision's merges, extra tokens and channel list (its keep list is checked) */
function checkHeadExtras(at: string, hd: HeadDecision, n: number, pruned: number, headDim: number): void {
  const keep = hd.keep
  if (hd.merges !== undefined && !Array.isArray(hd.merges)) throw new CacheError(`${at}.merges must be an array when given`)
  if (hd.extra !== undefined && !Array.isArray(hd.extra)) throw new CacheError(`${at}.extra must be an array when given`)
  // most heads have no merges: no Set, Map or iterator for them (this runs cold in a one-shot compaction)
  if (hd.merges?.length) {
    // only merges ask whether a slot is kept: a Set of every kept slot would cost more than the compaction
    const kept = new Set(keep)
    // each pivot takes one merge: two merges into one pivot would each overwrite it, losing a member
    const pivots = new Map<number, number>()
    for (const [m, spec] of hd.merges.entries()) {
      if (pivots.has(spec.pivot)) throw new CacheError(`${at}.merges[${m}].pivot = ${spec.pivot} is also merges[${pivots.get(spec.pivot)}]'s pivot: list all its members in one merge`)
      pivots.set(spec.pivot, m)
    }
    for (const [m, spec] of hd.merges.entries()) {
      const mat = `${at}.merges[${m}]`
      if (!isInt(spec.pivot) || spec.pivot < 0 || spec.pivot >= n) throw new CacheError(`${mat}.pivot = ${spec.pivot} is outside [0, ${n})`)
      if (!kept.has(spec.pivot)) throw new CacheError(`${mat}.pivot = ${spec.pivot} is not in keep: a merge needs a kept pivot`)
      const members = checkSlots(`${mat}.members`, spec.members, n, false)
      if (!(spec.weights instanceof Float32Array) || spec.weights.length !== members.length) {
        throw new CacheError(`${mat}.weights must be a Float32Array of ${members.length} (one per member), got ${spec.weights?.length}`)
      }
      for (let j = 0; j < members.length; j++) {
        const w = spec.weights[j]
        if (!(Number.isFinite(w) && w >= 0)) throw new CacheError(`${mat}.weights[${j}] = ${w} must be finite and >= 0`)
        if ((members[j] < pruned) !== (spec.pivot < pruned)) {
          throw new CacheError(`${mat}: member ${members[j]} and pivot ${spec.pivot} lie on different sides of the channel-pruned prefix (${pruned} slots)`)
        }
      }
    }
  }
  if (hd.extra?.length) for (const [e, x] of hd.extra.entries()) {
    const eat = `${at}.extra[${e}]`
    if (!(x.key instanceof Float32Array) || x.key.length !== headDim) throw new CacheError(`${eat}.key must be a Float32Array of ${headDim}, got ${x.key?.length}`)
    if (!(x.value instanceof Float32Array) || x.value.length !== headDim) throw new CacheError(`${eat}.value must be a Float32Array of ${headDim}, got ${x.value?.length}`)
    if (!isInt(x.position)) throw new CacheError(`${eat}.position = ${x.position} must be a whole number`)
    for (let c = 0; c < headDim; c++) {
      if (!Number.isFinite(x.key[c]) || !Number.isFinite(x.value[c])) throw new CacheError(`${eat}: key or value channel ${c} is not finite`)
    }
  }
  if (hd.keyChannels) {
    const kc = hd.keyChannels
    if (pruned > 0) throw new CacheError(`${at}.keyChannels: (layer ${hd.layer}, head ${hd.head}) is already channel-pruned`)
    const ch = checkSlots(`${at}.keyChannels.channels`, kc.channels, headDim, true)
    if (ch.length === 0) throw new CacheError(`${at}.keyChannels.channels is empty: keep at least one channel`)
    if (!isInt(kc.upto) || kc.upto < 0 || kc.upto > keep.length) {
      throw new CacheError(`${at}.keyChannels.upto = ${kc.upto} is outside [0, ${keep.length}] (the kept slots)`)
    }
  }
}
