// Reuse across requests (issue 14): sequences, the prefix cache and the key re-rotation they stand on.
export { Sequence, type SequenceOptions } from './sequence.js'
export { PrefixCache, type PrefixCacheOptions, type PrefixCacheStats } from './prefix-cache.js'
export type { EvictionName } from './block-eviction.js'
export { blockHashes } from './block-hash.js'
export { keyRotation } from './rerotate.js'
export { ReuseError } from './errors.js'
