/*
 * fuzz_pack.c -- libFuzzer target: glow_open_pack, the packed-file reader
 * (docs/FORMAT.md, "Packed image sets"): the fixed header, the class names,
 * the labels and the size check against the file. When the input opens, a
 * batch of the first, middle and last images goes through
 * glow_dataset_batch and, with a half-size random crop and flips, through
 * glow_dataset_batch_aug: the images are read from the file with pread,
 * into buffers ASan checks.
 */
#define _GNU_SOURCE /* memfd_create */
#include <stdlib.h>

#include "fuzz_util.h"
#include "glow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char p[64], err[256];
  int fd = fuzz_file(data, size, p);
  if (fd < 0) return 0;
  glow_dataset ds;
  if (glow_open_pack(p, &ds, err, sizeof err) == GLOW_OK) {
    /* what the reader promises: the pixels lie inside the file, the
       labels inside 0..classes-1, a name for every class */
    size_t per = (size_t)ds.h * ds.w * ds.c;
    if (ds.n < 1 || ds.h < 1 || ds.w < 1 || (ds.c != 1 && ds.c != 3) || !ds.pack || ds.x ||
        ds.data_off + per * (uint64_t)ds.n != ds.pack_len || ds.pack_len != size)
      abort();
    if (ds.classes) {
      if (!ds.y || !ds.class_names) abort();
      for (int k = 0; k < ds.classes; k++)
        if (!ds.class_names[k]) abort();
      for (int64_t i = 0; i < ds.n; i++)
        if (ds.y[i] < 0 || ds.y[i] >= ds.classes) abort();
    } else if (ds.y) {
      abort();
    }
    if (per <= (1 << 20)) {
      int64_t idx[3] = {0, ds.n / 2, ds.n - 1};
      float *x = malloc(sizeof(float) * 3 * per);
      int y[3];
      if (x) {
        /* the file has not changed: both read */
        if (glow_dataset_batch(&ds, idx, 3, 8, 1, 1, 1, x, y, err, sizeof err) != GLOW_OK) abort();
        ds.oh = (ds.h + 1) / 2;
        ds.ow = (ds.w + 1) / 2;
        if (glow_dataset_batch_aug(&ds, idx, 3, 5, 2, 3, 1, 1, 1, x, y, err, sizeof err) != GLOW_OK)
          abort();
      }
      free(x);
    }
  }
  glow_dataset_free(&ds);
  close(fd);
  return 0;
}
