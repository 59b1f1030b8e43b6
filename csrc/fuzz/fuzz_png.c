/*
 * fuzz_png.c -- libFuzzer target: glow_png_read, PNG decoding through
 * libpng (palettes, alpha, 16-bit, low bit depths, interlacing); then
 * glow_image_decode, the folders' path, fitting it to 9x7 row by row.
 */
#define _GNU_SOURCE /* memfd_create */
#include <stdlib.h>

#include "fuzz_util.h"
#include "glow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char p[64], err[256];
  int fd = fuzz_file(data, size, p);
  if (fd < 0) return 0;
  uint8_t *px = NULL;
  int h, w, c;
  if (glow_png_read(p, NULL, &px, &h, &w, &c, err, sizeof err) == GLOW_OK) {
    /* read every pixel of the result */
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)h * w * c; i++) sum += px[i];
    free(px);
    if (sum == 0xFFFFFFFFu) fputs("", stderr); /* keeps the reads */
  }
  /* the folder path: fit to a small target as the rows come (DCT scaling,
     the fitter, channel conversion), under a small pixel limit */
  uint8_t dst[9 * 7 * 3];
  glow_decode_opts o = {NULL, 1 << 22, 20, "max_pixels", NULL};
  int dc = size > 0 && (data[size - 1] & 1) ? 1 : 3;
  if (glow_image_decode(p, &o, 9, 7, dc, dst, NULL, NULL, NULL, NULL, err, sizeof err) == GLOW_OK) {
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)9 * 7 * dc; i++) sum += dst[i];
    if (sum == 0xFFFFFFFFu) fputs("", stderr);
  }
  close(fd);
  return 0;
}
