/**
 * Bulk arithmetic over the ring Z_2^64 on BigInt64Array words (two's complement, so a word read as
 * signed is the ring element's centred lift). Two implementations of one interface: the wasm kernels
 * (assembly/kernels/mpc-ring.ts; wasm i64 wraps natively) and a plain BigInt twin that the tests hold
 * the kernels to. BigInt per element is ~50x slower than the kernels; bulk work goes through wasm.
 */
import { loadWasm, type KvkitExports } from '../backend/wasm/load.js'
import type { Heap } from '../backend/heap.js'
import { dcfReference, type DcfCorrections, type DcfKernels, type DcfKeys } from './dcf.js'

export type Words = BigInt64Array

export interface Ring extends DcfKernels {
  readonly name: 'wasm' | 'reference'
  add(a: Words, b: Words): Words
  sub(a: Words, b: Words): Words
  /** elementwise product mod 2^64 */
  mul(a: Words, b: Words): Words
  xor(a: Words, b: Words): Words
  and(a: Words, b: Words): Words
  shl(a: Words, s: number): Words
  /** right shift by s bits: arithmetic (sign-filling) or logical */
  shr(a: Words, s: number, arithmetic: boolean): Words
  /** (k x m) . (m x n), row-major */
  matmul(a: Words, b: Words, k: number, m: number, n: number): Words
  /** Beaver's local step: c + d.b + e.a (+ d.e for party 0), elementwise */
  beaverMul(c: Words, a: Words, b: Words, d: Words, e: Words, party: 0 | 1): Words
  /** the GF(2)^64 twin: c ^ (d & b) ^ (e & a) (^ d & e for party 0) */
  beaverAnd(c: Words, a: Words, b: Words, d: Words, e: Words, party: 0 | 1): Words
}

export class RingShapeError extends RangeError {
  override name = 'RingShapeError'
}

function sameLength(op: string, ...xs: Words[]): number {
  const n = xs[0].length
  for (const x of xs) if (x.length !== n) throw new RingShapeError(`${op}: operand lengths differ (${xs.map((y) => y.length).join(', ')})`)
  return n
}
function checkShift(op: string, s: number): void {
  if (!Number.isInteger(s) || s < 0 || s > 63) throw new RingShapeError(`${op}: shift must be an integer in 0..63, got ${s}`)
}
function checkMatmul(a: Words, b: Words, k: number, m: number, n: number): void {
  if (a.length !== k * m || b.length !== m * n) throw new RingShapeError(`matmul: expected ${k}x${m} and ${m}x${n} operands, got ${a.length} and ${b.length} words`)
}

const wrap = (x: bigint): bigint => BigInt.asIntN(64, x)

/** The plain BigInt ring: the reference the kernels are tested against. */
export const referenceRing: Ring = {
  name: 'reference',
  ...dcfReference,
  add: (a, b) => map2('add', a, b, (x, y) => wrap(x + y)),
  sub: (a, b) => map2('sub', a, b, (x, y) => wrap(x - y)),
  mul: (a, b) => map2('mul', a, b, (x, y) => wrap(x * y)),
  xor: (a, b) => map2('xor', a, b, (x, y) => x ^ y),
  and: (a, b) => map2('and', a, b, (x, y) => x & y),
  shl(a, s) {
    checkShift('shl', s)
    return a.map((x) => wrap(x << BigInt(s)))
  },
  shr(a, s, arithmetic) {
    checkShift('shr', s)
    return a.map((x) => (arithmetic ? x >> BigInt(s) : wrap(BigInt.asUintN(64, x) >> BigInt(s))))
  },
  matmul(a, b, k, m, n) {
    checkMatmul(a, b, k, m, n)
    const out = new BigInt64Array(k * n)
    for (let r = 0; r < k; r++) {
      for (let j = 0; j < n; j++) {
        let s = 0n
        for (let t = 0; t < m; t++) s += a[r * m + t] * b[t * n + j]
        out[r * n + j] = wrap(s)
      }
    }
    return out
  },
  beaverMul(c, a, b, d, e, party) {
    const n = sameLength('beaverMul', c, a, b, d, e)
    const out = new BigInt64Array(n)
    for (let i = 0; i < n; i++) out[i] = wrap(c[i] + d[i] * b[i] + e[i] * a[i] + (party === 0 ? d[i] * e[i] : 0n))
    return out
  },
  beaverAnd(c, a, b, d, e, party) {
    const n = sameLength('beaverAnd', c, a, b, d, e)
    const out = new BigInt64Array(n)
    for (let i = 0; i < n; i++) out[i] = c[i] ^ (d[i] & b[i]) ^ (e[i] & a[i]) ^ (party === 0 ? d[i] & e[i] : 0n)
    return out
  },
}

function map2(op: string, a: Words, b: Words, f: (x: bigint, y: bigint) => bigint): Words {
  const n = sameLength(op, a, b)
  const out = new BigInt64Array(n)
  for (let i = 0; i < n; i++) out[i] = f(a[i], b[i])
  return out
}

type Kernel = (...args: number[]) => void

/**
 * The wasm ring: operands are copied into the arena, the kernel runs over pointers, the result is
 * copied out and the scratch freed (one copy each way is small next to the kernel for matmul, and the
 * shares stay ordinary BigInt64Arrays that a transport can send as they are).
 */
export class WasmRing implements Ring {
  readonly name = 'wasm' as const
  constructor(
    private readonly e: KvkitExports,
    private readonly heap: Heap,
  ) {}

  private run(kernel: string, inputs: Words[], outLength: number, scalars: (ptrs: number[], out: number) => number[]): Words {
    const out = new BigInt64Array(outLength)
    this.withArrays([...inputs, out], inputs.length, (p) => (this.e[kernel] as Kernel)(...scalars(p.slice(0, -1), p[p.length - 1])))
    return out
  }
  private elementwise(kernel: string, op: string, ...xs: Words[]): Words {
    const n = sameLength(op, ...xs)
    return this.run(kernel, xs, n, (p, out) => [...p, out, n])
  }

  add = (a: Words, b: Words): Words => this.elementwise('mpcAdd', 'add', a, b)
  sub = (a: Words, b: Words): Words => this.elementwise('mpcSub', 'sub', a, b)
  mul = (a: Words, b: Words): Words => this.elementwise('mpcMul', 'mul', a, b)
  xor = (a: Words, b: Words): Words => this.elementwise('mpcXor', 'xor', a, b)
  and = (a: Words, b: Words): Words => this.elementwise('mpcAnd', 'and', a, b)
  shl(a: Words, s: number): Words {
    checkShift('shl', s)
    return this.run('mpcShl', [a], a.length, ([p], out) => [p, s, out, a.length])
  }
  shr(a: Words, s: number, arithmetic: boolean): Words {
    checkShift('shr', s)
    return this.run('mpcShr', [a], a.length, ([p], out) => [p, s, arithmetic ? 1 : 0, out, a.length])
  }
  matmul(a: Words, b: Words, k: number, m: number, n: number): Words {
    checkMatmul(a, b, k, m, n)
    return this.run('mpcMatmul', [a, b], k * n, ([pa, pb], out) => [pa, pb, out, k, m, n, 0])
  }
  beaverMul(c: Words, a: Words, b: Words, d: Words, e: Words, party: 0 | 1): Words {
    const n = sameLength('beaverMul', c, a, b, d, e)
    return this.run('mpcBeaverMul', [c, a, b, d, e], n, (p, out) => [...p, party, out, n])
  }
  beaverAnd(c: Words, a: Words, b: Words, d: Words, e: Words, party: 0 | 1): Words {
    const n = sameLength('beaverAnd', c, a, b, d, e)
    return this.run('mpcBeaverAnd', [c, a, b, d, e], n, (p, out) => [...p, party, out, n])
  }

  dcfCorrections(alpha: Words, beta: Words, bits: number, seed0: Uint32Array, seed1: Uint32Array): DcfCorrections {
    const n = alpha.length
    const cw: DcfCorrections = { seedCw: new Uint32Array(4 * n * bits), valueCw: new BigInt64Array(n * bits), controlCw: new Uint8Array(n * bits), finalCw: new BigInt64Array(n) }
    this.withArrays([alpha, beta, seed0, seed1, cw.seedCw, cw.valueCw, cw.controlCw, cw.finalCw, new Uint8Array(128)], 4, (p) => (this.e.mpcDcfGen as Kernel)(...p.slice(0, 8), n, bits, p[8]))
    return cw
  }
  dcfEval(key: DcfKeys, x: Words): Words {
    const out = new BigInt64Array(key.n)
    this.withArrays([key.seed, key.seedCw, key.valueCw, key.controlCw, key.finalCw, x, out, new Uint8Array(64)], 6, (p) => (this.e.mpcDcfEval as Kernel)(...p.slice(0, 7), key.n, key.bits, key.party, p[7]))
    return out
  }

  /** Copies `arrays` into the arena, runs `f` on their pointers, copies arrays from index `outFrom` on back. */
  private withArrays(arrays: ArrayBufferView[], outFrom: number, f: (ptrs: number[]) => void): void {
    const ptrs = arrays.map((a) => {
      const p = this.heap.alloc(Math.max(a.byteLength, 8))
      new Uint8Array(this.heap.memory.buffer, p, a.byteLength).set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
      return p
    })
    try {
      f(ptrs)
      arrays.forEach((a, i) => {
        if (i >= outFrom) new Uint8Array(a.buffer, a.byteOffset, a.byteLength).set(new Uint8Array(this.heap.memory.buffer, ptrs[i], a.byteLength))
      })
    } finally {
      for (const p of ptrs) this.heap.release(p)
    }
  }
}

/** The kernels in a memory of their own (the MPC executor shares no arena with the model). */
export async function createWasmRing(): Promise<WasmRing> {
  const { exports, heap } = await loadWasm({ relaxed: false })
  return new WasmRing(exports, heap)
}

/** The words of `parts` one after another. */
export function concatWords(...parts: Words[]): Words {
  const out = new BigInt64Array(parts.reduce((s, p) => s + p.length, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}
