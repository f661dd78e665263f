import { relative } from 'node:path'
import { BaseSequencer, type TestSpecification } from 'vitest/node'
import { SLOW_FILES } from './isolated-files.js'

const SECONDS = new Map(SLOW_FILES.map(([f, s]) => [`test/${f}`, s]))

/**
 * Starts the files of SLOW_FILES first, longest first, then the rest in vitest's own order (unknown,
 * then failed, then longest by its results cache, else largest): the CI's fresh checkout has no results
 * cache, so vitest alone orders by file size and a long but short file (diffusion-golden, 52 lines and
 * 106 s) started late and ran on one core while the other sat idle.
 */
export default class SlowFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rest = await super.sort(files)
    const seconds = (f: TestSpecification) => SECONDS.get(relative(f.project.config.root, f.moduleId).split('\\').join('/')) ?? -1
    // stable: the files not listed keep vitest's order, after the listed ones
    return rest.map((f, i) => ({ f, i, s: seconds(f) })).sort((a, b) => b.s - a.s || a.i - b.i).map((x) => x.f)
  }
}
