/**
 * createInProcessParties and createParty check their ring and setup before any channel exists: the
 * options passed where the ring goes (createInProcessParties({ fracBits: 16 })) made two parties that
 * failed at the first operation with a TypeError, and a misspelt option (`fracbits: 16`) was ignored,
 * the parties running at the default 18 fractional bits. Both are a ProtocolError naming the value.
 */
import { describe, expect, it } from 'vitest'
import { ProtocolError } from '../src/mpc/party.js'
import { referenceRing, type Ring } from '../src/mpc/ring.js'
import { createInProcessParties, createParty } from '../src/mpc/session.js'
import { inProcessPair } from '../src/mpc/transport.js'

describe('MPC party setup', () => {
  it.each([
    [{ fracBits: 16 }, 'ring must be a Ring (createWasmRing() or referenceRing), got object without add, sub, mul, xor, and, shl, shr, matmul, beaverMul, beaverAnd'],
    [{ ...referenceRing, matmul: undefined }, 'got object without matmul'],
    [null, 'got null'],
    ['wasm', 'got string'],
  ])('ring %j: ProtocolError naming it', (ring, message) => {
    expect(() => createInProcessParties(ring as unknown as Ring)).toThrow(ProtocolError)
    expect(() => createInProcessParties(ring as unknown as Ring)).toThrow(message)
  })

  it.each([
    [{ fracbits: 16 }, 'unknown option "fracbits"; options: fracBits, trunc, seeds'],
    [{ truncation: 'exact' }, 'unknown option "truncation"; options: fracBits, trunc, seeds'],
    [null, 'options must be an object, got null'],
  ])('setup %j: ProtocolError naming it', (setup, message) => {
    expect(() => createInProcessParties(referenceRing, setup as never)).toThrow(`createParty: ${message}`)
    const [a, b] = inProcessPair()
    try {
      expect(() => createParty(0, a, referenceRing, setup as never)).toThrow(ProtocolError)
    } finally {
      a.close()
      b.close()
    }
  })

  it('a good setup is taken: the parties run at its fractional bits and truncation', () => {
    const parties = createInProcessParties(referenceRing, { fracBits: 16, trunc: 'exact' })
    try {
      expect(parties.map((p) => [p.fracBits, p.truncMode])).toEqual([[16, 'exact'], [16, 'exact']])
    } finally {
      for (const p of parties) p.transport.close()
    }
  })
})
