// How the K/V-reading kernels (score, attend, flash, runtime's attend_causal) read cache rows: this file
// for float32 pages, kv.f16.wgsl for float16 pages (kernels.ts pastes one of them after the prelude and
// compiles those files once per format). A row handle is the word index of the row's first element;
// element c of a row is a float32 word here.

// Row j of a paged stream (pages of pageTokens rows of d words).
fn kv_row(table: u32, page_tokens: u32, j: u32, d: u32) -> u32 { return page_row(table, page_tokens, j, d); }
// Whether kv4a may read elements c..c+3 of rows of d elements at `row` (c a multiple of 4, c + 3 < d).
fn kv_aligned(row: u32, d: u32) -> bool { return ((row | d) & 3u) == 0u; }
// Elements c..c+3 in one 16-byte load (kv_aligned).
fn kv4a(row: u32, c: u32) -> vec4<f32> { return ld4(row + c); }
// Element c.
fn kv1(row: u32, c: u32) -> f32 { return ld(row + c); }
