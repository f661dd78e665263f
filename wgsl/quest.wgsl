// Quest's page selection (Tang et al. 2024, sec. 3) over the page summaries of page_summary (mode 0).

// Upper bound of a page's attention logits, summed over a GQA group's query heads:
//   out[p] = sum_h sum_c max(q[h][c] * kmin[p][c], q[h][c] * kmax[p][c]).
// One quad per page (quad.wgsl), heads in groups of QG, workgroups striding over the pages.
// args: 0 q, 1 qHeads, 2 d, 3 kmin [pages][d], 4 kmax [pages][d], 5 pages, 6 out, 7 groups (as score_keys)
@compute @workgroup_size(256)
fn page_upper_bound(I: In) {
  setup(I);
  let q = pu(0u); let qh = pu(1u); let d = pu(2u); let lo = pu(3u); let hi = pu(4u); let pages = pu(5u);
  let j = I.lid & 3u;
  let first = wg_linear(I.wg, I.nwg) * 64u;
  let stride = pu(7u) * 64u;
  for (var it = 0u; it < (pages + stride - 1u) / stride; it++) {
    let pg = first + it * stride + (I.lid >> 2u);
    var acc = vec4<f32>(0.0); // per head of the staged group; heads past qHeads have q = 0 and add 0
    for (var h0 = 0u; h0 < qh; h0 += QG) {
      for (var c0 = 0u; c0 < d; c0 += QD) {
        stage_q(q, qh, h0, d, c0, I.lid);
        if (pg < pages) {
          let a = lo + pg * d + c0;
          let b = hi + pg * d + c0;
          let len = min(QD, d - c0);
          if ((len & 3u) == 0u && ((a | b) & 3u) == 0u) { // 16-byte loads, as quad_dot
            for (var c = 4u * j; c < len; c += 16u) {
              let l4 = ld4(a + c);
              let h4 = ld4(b + c);
              for (var k = 0u; k < 4u; k++) { acc += max(qs[c + k] * l4[k], qs[c + k] * h4[k]); }
            }
          } else {
            for (var c = j; c < len; c += 4u) { acc += max(qs[c] * ld(a + c), qs[c] * ld(b + c)); }
          }
        }
      }
    }
    let s = quad_sum4(vec4<f32>(dot(acc, vec4<f32>(1.0)), 0.0, 0.0, 0.0), I.lid);
    if (pg < pages && j == 0u) { st(pu(6u) + pg, s); }
  }
}

// Token indices of chosen pages: out[i] = pagesIdx[i / page] * page + i % page for i < count. Quest keeps
// the page of the newest tokens (kvkit's quest.ts: the top pages of the full ones, then the last page):
// put it last, and count = its start + its length drops the missing tail of a partial last page.
// args: 0 pagesIdx (i32), 1 count, 2 page, 3 out (i32)
@compute @workgroup_size(256)
fn page_token_indices(I: In) {
  setup(I);
  let page = pu(2u);
  let i = wg_linear(I.wg, I.nwg) * WG + I.lid;
  if (i >= pu(1u)) { return; }
  stu(pu(3u) + i, ldu(pu(0u) + i / page) * page + i % page);
}
