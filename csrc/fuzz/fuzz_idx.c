/*
 * fuzz_idx.c -- libFuzzer target: glow_load_idx, the (gzipped or plain) IDX
 * pair reader of Fashion-MNIST. The input's first byte splits it: images
 * file = the next (size - 1) * b0 / 255 bytes, labels file = the rest.
 */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz_util.h"
#include "glow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t cut = (size - 1) * data[0] / 255;
  char pi[64], pl[64], err[256];
  int fi = fuzz_file(data + 1, cut, pi);
  int fl = fuzz_file(data + 1 + cut, size - 1 - cut, pl);
  if (fi >= 0 && fl >= 0) {
    glow_dataset ds = {0};
    if (glow_load_idx(pi, pl, &ds, err, sizeof err) == GLOW_OK) {
      /* touch what was loaded: a batch of the first and last image */
      if (ds.n > 0 && (int64_t)ds.h * ds.w * ds.c <= (1 << 20)) {
        int64_t idx[2] = {0, ds.n - 1};
        float *x = malloc(sizeof(float) * 2 * (size_t)ds.h * ds.w * ds.c);
        int y[2];
        if (x && glow_dataset_batch(&ds, idx, 2, 8, 1, 1, 1, x, y, err, sizeof err) != GLOW_OK)
          abort(); /* in memory: nothing to fail */
        free(x);
      }
    }
    glow_dataset_free(&ds);
  }
  if (fi >= 0) close(fi);
  if (fl >= 0) close(fl);
  return 0;
}
