import { existsSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import type { TestSpecification, Vitest } from 'vitest/node'
import { ISOLATED_FILES, OWN_PROCESS, SLOW_BUT_SHARED, SLOW_FILES } from './isolated-files.js'
import SlowFirstSequencer from './slow-first-sequencer.js'

describe('the isolated files and their order (vitest.config.ts)', () => {
  it('names files that exist, so a renamed one cannot fall silently into the shared forks', () => {
    expect(ISOLATED_FILES.filter((f) => !existsSync(f))).toEqual([])
    expect(new Set(ISOLATED_FILES).size).toBe(SLOW_FILES.length - SLOW_BUT_SHARED.size + Object.keys(OWN_PROCESS).length)
    expect([...SLOW_BUT_SHARED].filter((f) => !SLOW_FILES.some(([s]) => s === f))).toEqual([])
  })

  it('lists the slow files longest first', () => {
    const seconds = SLOW_FILES.map(([, s]) => s)
    expect(seconds).toEqual([...seconds].sort((a, b) => b - a))
  })

  it('starts the listed slow files first, longest first, and leaves the others in vitest\'s order (largest first without a results cache)', async () => {
    const root = '/repo'
    const project = { name: '', config: { root, isolate: true, sequence: { groupOrder: 0 } } }
    const sizes: Record<string, number> = { 'test/a.test.ts': 10, 'test/b.test.ts': 30, [`test/${SLOW_FILES[2][0]}`]: 1, [`test/${SLOW_FILES[0][0]}`]: 2, 'test/c.test.ts': 20 }
    const ctx = { config: { root }, cache: { getFileTestResults: () => undefined, getFileStats: (key: string) => ({ size: sizes[key.slice(1)] }) } }
    const specs = Object.keys(sizes).map((f) => ({ project, moduleId: `${root}/${f}` }))
    const sorted = await new SlowFirstSequencer(ctx as unknown as Vitest).sort(specs as unknown as TestSpecification[])
    expect(sorted.map((s) => s.moduleId.slice(root.length + 1))).toEqual([`test/${SLOW_FILES[0][0]}`, `test/${SLOW_FILES[2][0]}`, 'test/b.test.ts', 'test/c.test.ts', 'test/a.test.ts'])
  })
})
