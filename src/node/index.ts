// kvkit/node: what needs a file system (Node, Bun, Deno): model folders on disk.
export { loadModel } from './load.js'
export { DirectorySource } from './directory.js'
// tiers below memory for reused chunks' KV (CacheBlend's store): the file system, Redis/Valkey
export { FileChunkStore } from './file-chunk-store.js'
export { RedisChunkStore, type RedisChunkStoreOptions } from './redis-chunk-store.js'
export { nodeWorkerSpawner, nodeThreads } from './threads.js'
// the errors this entry's own functions throw (loadModel's; the chunk stores'), the root's classes
export { ModelLoadError, ModelInputError } from '../model/errors.js'
export { ReuseError } from '../reuse/errors.js'
