/*
 * fuzz_jpeg.c -- libFuzzer target: glow_image_read, which picks the decoder
 * by the file's first bytes (FF D8 FF: glow_jpeg_read through libjpeg-turbo;
 * the PNG signature: glow_png_read). The seeds are JPEGs: baseline and
 * progressive, gray, RGB (4:2:0 and 4:4:4), Adobe CMYK, restart markers.
 * Then glow_image_decode, the folders' path, fits the file to 9x7 as it is
 * decoded (DCT scaling, the row-by-row fitter, the scan limit).
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
  int h = 0, w = 0, c = 0;
  int rc = glow_image_read(p, NULL, &px, &h, &w, &c, err, sizeof err);
  if (rc == GLOW_OK) {
    if (!px || h < 1 || w < 1 || (c != 1 && c != 3)) abort(); /* the contract */
    /* read every pixel of the result */
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)h * w * c; i++) sum += px[i];
    free(px);
    if (sum == 0xFFFFFFFFu) fputs("", stderr); /* keeps the reads */
  } else if (px) {
    abort(); /* nothing is held after a failure */
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
