// kvkit/node: what needs a file system (Node, Bun, Deno): model folders on disk.
export { loadModel } from './load.js'
export { DirectorySource } from './directory.js'
// tiers below memory for reused chunks' KV (CacheBlend's store): the file system, Redis/Valkey
export { FileChunkStore } from './file-chunk-store.js'
export { RedisChunkStore, type RedisChunkStoreOptions } from './redis-chunk-store.js'
export { nodeWorkerSpawner, nodeThreads } from './threads.js'
