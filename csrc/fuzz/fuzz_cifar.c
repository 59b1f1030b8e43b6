/*
 * fuzz_cifar.c -- libFuzzer target: glow_load_cifar10, the CIFAR-10 binary
 * batch reader. The input's first byte b0 picks 1 + (b0 & 3) files, which
 * share the rest of the input equally; then b0 & 4 adds a path that does
 * not exist as the last path, or else b0 & 8 a directory. Give it -max_len=13000 so
 * that several whole 3073-byte records fit.
 */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz_util.h"
#include "glow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int nfiles = 1 + (data[0] & 3), fds[4], npaths = 0;
  char p[5][64], err[256];
  const char *paths[5];
  size_t part = (size - 1) / (size_t)nfiles, off = 1;
  for (int k = 0; k < nfiles; k++) {
    size_t len = k == nfiles - 1 ? size - off : part;
    fds[k] = fuzz_file(data + off, len, p[k]);
    off += len;
    if (fds[k] >= 0) paths[npaths++] = p[k];
  }
  if (data[0] & 4) paths[npaths++] = "/nonexistent/glow-fuzz/data_batch_9.bin";
  else if (data[0] & 8) paths[npaths++] = "/proc/self";
  glow_dataset ds = {0};
  if (glow_load_cifar10(paths, npaths, &ds, err, sizeof err) == GLOW_OK && ds.n > 0) {
    int64_t idx[2] = {0, ds.n - 1};
    float x[2 * 32 * 32 * 3];
    int y[2];
    if (glow_dataset_batch(&ds, idx, 2, 8, 1, 1, 1, x, y, err, sizeof err) != GLOW_OK) abort();
  }
  glow_dataset_free(&ds);
  for (int k = 0; k < nfiles; k++)
    if (fds[k] >= 0) close(fds[k]);
  return 0;
}
