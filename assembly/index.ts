// The compute core's exports: kernels over pointers and sizes into the memory TypeScript owns.
export { heapBase, copyBytes } from './kernels/memory'
export { scoreKeys } from './kernels/score'
export { softmaxRows, logSumExp, softVote } from './kernels/softmax'
export { topK } from './kernels/topk'
export { maxPool1d, avgPool1d } from './kernels/pool'
export { attend } from './kernels/attention'
export { pageMinMax, chunkMeans } from './kernels/pages'
