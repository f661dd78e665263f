// kvkit/node: what needs a file system (Node, Bun, Deno): model folders on disk.
export { loadModel } from './load.js'
export { DirectorySource } from './directory.js'
export { nodeWorkerSpawner, nodeThreads } from './threads.js'
