/**
 * The playground server's `requests` holds the latest REQUESTS_KEPT paths, not every path since it
 * started: a dev server left running kept a list that grew with every request, without bound.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REQUESTS_KEPT, servePlayground } from '../src/node/playground.js'

describe('playground server request log', () => {
  it(`keeps the last ${REQUESTS_KEPT} paths, in order`, async () => {
    const page = mkdtempSync(join(tmpdir(), 'kvkit-playground-page-'))
    writeFileSync(join(page, 'index.html'), '<!doctype html><title>p</title>')
    const server = await servePlayground({ page, model: 'models/fixture-14m' })
    try {
      const total = REQUESTS_KEPT + 20
      for (let i = 0; i < total; i++) {
        const r = await fetch(new URL(`/missing-${i}`, server.url))
        await r.arrayBuffer()
      }
      expect(server.requests.length).toBe(REQUESTS_KEPT)
      expect(server.requests[0]).toBe(`/missing-${total - REQUESTS_KEPT}`)
      expect(server.requests.at(-1)).toBe(`/missing-${total - 1}`)
    } finally {
      await server.close()
    }
  }, 60_000)
})
