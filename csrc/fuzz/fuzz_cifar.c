/*
 * fuzz_cifar.c -- libFuzzer target: glow_load_cifar10, the CIFAR-10 binary
 * batch reader (one file).
 */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz_util.h"
#include "glow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char p[64], err[256];
  int fd = fuzz_file(data, size, p);
  if (fd < 0) return 0;
  const char *paths[1] = {p};
  glow_dataset ds = {0};
  if (glow_load_cifar10(paths, 1, &ds, err, sizeof err) == GLOW_OK && ds.n > 0) {
    int64_t idx[1] = {ds.n - 1};
    float x[32 * 32 * 3];
    int y[1];
    glow_dataset_batch(&ds, idx, 1, 8, 1, 1, 1, x, y);
  }
  glow_dataset_free(&ds);
  close(fd);
  return 0;
}
