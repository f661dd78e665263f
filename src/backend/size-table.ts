/**
 * The heap's table of live blocks: byte size by pointer, in typed arrays (open addressing, linear
 * probing, deletion by backward shift, so no tombstones build up). It replaces a Map<number, number>:
 * a compaction returns a thousand or more pages at once, mostly in code V8 has not optimised yet (it
 * runs a handful of times), and there a Map's get and delete per page cost more than the page moves
 * they follow. Pointers and sizes are multiples of 16 below 2^32, so both are kept divided by 16 in
 * int32 slots; slot key 0 means empty (no block starts at address 0: the arena starts above the
 * module's data).
 */
export class SizeTable {
  private keys: Int32Array
  private vals: Int32Array
  private shift: number
  private count = 0

  constructor(capacity = 1024) {
    let bits = 4
    while (1 << bits < capacity * 2) bits++
    this.keys = new Int32Array(1 << bits)
    this.vals = new Int32Array(1 << bits)
    this.shift = 32 - bits
  }

  /** live blocks */
  get size(): number {
    return this.count
  }

  /** the block's size in bytes, or 0 when no live block starts at ptr */
  get(ptr: number): number {
    if (!isBlockPointer(ptr)) return 0
    const key = ptr / 16
    const mask = this.keys.length - 1
    for (let i = this.slot(key); ; i = (i + 1) & mask) {
      const k = this.keys[i]
      if (k === key) return this.vals[i] * 16
      if (k === 0) return 0
    }
  }

  /** records a live block (ptr and size multiples of 16, ptr > 0, not live already) */
  set(ptr: number, size: number): void {
    if (!isBlockPointer(ptr) || !isBlockPointer(size)) throw new RangeError(`SizeTable.set: pointer ${ptr} and size ${size} must be positive multiples of 16`)
    if ((this.count + 1) * 2 > this.keys.length) this.grow()
    const key = ptr / 16
    const mask = this.keys.length - 1
    let i = this.slot(key)
    while (this.keys[i] !== 0 && this.keys[i] !== key) i = (i + 1) & mask
    if (this.keys[i] === 0) this.count++
    this.keys[i] = key
    this.vals[i] = size / 16
  }

  /** forgets the block at ptr; returns its size, or 0 when none was live there */
  delete(ptr: number): number {
    if (!isBlockPointer(ptr)) return 0
    const key = ptr / 16
    const keys = this.keys
    const mask = keys.length - 1
    let i = this.slot(key)
    while (keys[i] !== key) {
      if (keys[i] === 0) return 0
      i = (i + 1) & mask
    }
    const size = this.vals[i] * 16
    this.count--
    // backward shift: move later entries of the probe run into the hole when their home slot allows
    let hole = i
    for (let j = (i + 1) & mask; keys[j] !== 0; j = (j + 1) & mask) {
      const home = this.slot(keys[j])
      // j's entry may fill the hole unless its home lies cyclically in (hole, j]
      if ((j > hole && (home <= hole || home > j)) || (j < hole && home <= hole && home > j)) {
        keys[hole] = keys[j]
        this.vals[hole] = this.vals[j]
        hole = j
      }
    }
    keys[hole] = 0
    return size
  }

  private slot(key: number): number {
    return Math.imul(key, 0x9e3779b1) >>> this.shift
  }

  private grow(): void {
    const keys = this.keys
    const vals = this.vals
    this.keys = new Int32Array(keys.length * 2)
    this.vals = new Int32Array(keys.length * 2)
    this.shift--
    this.count = 0
    const mask = this.keys.length - 1
    for (let i = 0; i < keys.length; i++) {
      if (keys[i] === 0) continue
      let s = this.slot(keys[i])
      while (this.keys[s] !== 0) s = (s + 1) & mask
      this.keys[s] = keys[i]
      this.vals[s] = vals[i]
      this.count++
    }
  }
}

/** a positive multiple of 16 below 2^35 (what the table can hold: divided by 16, an int32) */
function isBlockPointer(x: number): boolean {
  return x > 0 && x % 16 === 0 && x < 2 ** 35
}
