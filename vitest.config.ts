import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // two cores on CI: run files in two forks, each with its own wasm heap
    pool: 'forks',
    maxWorkers: 2,
    // the two forks already fill the two cores: models load single-threaded unless a test asks for
    // threads (test/threads-identical.test.ts runs the worker pool on 2 and 3 threads)
    env: { KVKIT_THREADS: '1' },
    reporters: ['default', './test/summary-reporter.ts'],
  },
})
