import { defineConfig } from 'vitest/config'
import { ISOLATED_FILES } from './test/isolated-files.js'
import SlowFirstSequencer from './test/slow-first-sequencer.js'

const ALL = ['test/**/*.test.ts']

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // two cores on CI: run files in two forks, each with its own wasm heap
    pool: 'forks',
    maxWorkers: 2,
    // the two forks already fill the two cores: models load single-threaded unless a test asks for
    // threads (test/threads-identical.test.ts runs the worker pool on 2 and 3 threads)
    env: { KVKIT_THREADS: '1' },
    reporters: ['default', './test/summary-reporter.ts'],
    // the slow files first, longest first (test/isolated-files.ts)
    sequence: { sequencer: SlowFirstSequencer },
    // a fresh fork per file costs about a second of a core: the quick files share their fork's modules,
    // the slow and the state-changing ones (test/isolated-files.ts) keep a fork each
    projects: [
      { extends: true, test: { name: 'isolated', include: [...ISOLATED_FILES], isolate: true } },
      { extends: true, test: { name: 'shared', include: ALL, exclude: [...ISOLATED_FILES], isolate: false } },
    ],
  },
})
