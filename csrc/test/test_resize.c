/*
 * test_resize.c -- resize.c and the JPEG reader: the fast separable resize
 * against its naive reference (the full 2-D sum from the definitions) over
 * shrinking, growing and mixed sizes, regions and channels; exact values
 * (a constant image stays constant, a 2x shrink gives the block means, a
 * 1x2 -> 1x4 enlargement gives the bilinear values); fit regions; channel
 * conversion; and JPEG round trips, a truncated file and garbage refused
 * with a message. Prints "N passed, N failed".
 *
 * The fast kernel accumulates in float, the reference in double, so a value
 * that falls within rounding of a half may round the other way: they may
 * differ by 1, in at most 0.1% of the values (both count a value within
 * 1/1024 below a half as the half, so exact halves agree).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "glow.h"


static void resize_case(glow_rng *r, int sh, int sw, int c, int y0, int x0, int rh, int rw, int dh,
                        int dw) {
  size_t ns = (size_t)sh * sw * c, nd = (size_t)dh * dw * c;
  uint8_t *src = (uint8_t *)malloc(ns), *a = (uint8_t *)malloc(nd), *b = (uint8_t *)malloc(nd);
  for (size_t i = 0; i < ns; i++) src[i] = (uint8_t)(glow_rng_next(r) >> 56);
  int rc = glow_resize(src, sh, sw, c, y0, x0, rh, rw, a, dh, dw);
  glow_resize_naive(src, sh, sw, c, y0, x0, rh, rw, b, dh, dw);
  size_t off = 0, worst = 0;
  for (size_t i = 0; i < nd; i++) {
    size_t d = (size_t)abs((int)a[i] - (int)b[i]);
    if (d) off++;
    if (d > worst) worst = d;
  }
  char what[160];
  snprintf(what, sizeof what, "resize %dx%dx%d [%d,%d %dx%d] -> %dx%d: worst %zu, %zu of %zu off",
           sh, sw, c, y0, x0, rh, rw, dh, dw, worst, off, nd);
  check(rc == GLOW_OK && worst <= 1 && off * 1000 <= nd, what);
  free(src);
  free(a);
  free(b);
}

static void test_against_naive(void) {
  glow_rng r;
  glow_rng_seed(&r, 7);
  int sizes[][4] = {{28, 28, 64, 64}, {64, 64, 28, 28}, {17, 31, 5, 9},  {5, 9, 17, 31},
                    {20, 10, 7, 30},  {10, 20, 30, 7},  {8, 8, 8, 8},    {1, 1, 3, 4},
                    {30, 30, 1, 1},   {13, 7, 13, 3},   {100, 3, 9, 11}, {6, 6, 4, 4}};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
    for (int c = 1; c <= 3; c += 2)
      resize_case(&r, sizes[k][0], sizes[k][1], c, 0, 0, sizes[k][0], sizes[k][1], sizes[k][2],
                  sizes[k][3]);
  /* regions */
  resize_case(&r, 40, 50, 3, 3, 7, 30, 20, 16, 16);
  resize_case(&r, 40, 50, 1, 10, 0, 5, 50, 20, 64);
  /* the fit region of every size pair */
  for (int k = 0; k < 6; k++) {
    int sh = 5 + 7 * k, sw = 40 - 5 * k, dh = 8 + k, dw = 16 - k, y0, x0, rh, rw;
    glow_fit_region(sh, sw, dh, dw, &y0, &x0, &rh, &rw);
    resize_case(&r, sh, sw, 3, y0, x0, rh, rw, dh, dw);
  }
}

static void test_exact(void) {
  /* a constant image stays constant, whatever the sizes */
  int sz[][4] = {{7, 9, 3, 4}, {3, 4, 7, 9}, {10, 10, 3, 17}, {5, 5, 5, 5}};
  for (size_t k = 0; k < 4; k++) {
    int sh = sz[k][0], sw = sz[k][1], dh = sz[k][2], dw = sz[k][3];
    uint8_t src[300], dst[300];
    for (int v = 0; v < 256; v += 51) {
      memset(src, v, (size_t)sh * sw * 3);
      glow_resize(src, sh, sw, 3, 0, 0, sh, sw, dst, dh, dw);
      int ok = 1;
      for (int i = 0; i < dh * dw * 3; i++) ok &= dst[i] == v;
      char what[96];
      snprintf(what, sizeof what, "constant %d stays constant %dx%d -> %dx%d", v, sh, sw, dh, dw);
      check(ok, what);
    }
  }
  /* 2x shrink of a 4x4: the 2x2 block means, rounded half up */
  uint8_t s4[16] = {0, 1, 10, 20, 2, 2, 30, 41, 100, 101, 255, 255, 102, 103, 255, 254};
  uint8_t d2[4];
  glow_resize(s4, 4, 4, 1, 0, 0, 4, 4, d2, 2, 2);
  /* (0+1+2+2)/4 = 1.25 -> 1; (10+20+30+41)/4 = 25.25 -> 25;
     (100+101+102+103)/4 = 101.5 -> 102; (255*3+254)/4 = 254.75 -> 255 */
  check(d2[0] == 1 && d2[1] == 25 && d2[2] == 102 && d2[3] == 255, "2x shrink gives the block means");
  /* enlarge 1x2 [0, 255] to 1x4: s = -0.25 (0), 0.25, 0.75, 1.25 (1) */
  uint8_t s2[2] = {0, 255}, d4[4];
  glow_resize(s2, 1, 2, 1, 0, 0, 1, 2, d4, 1, 4);
  check(d4[0] == 0 && d4[1] == 64 && d4[2] == 191 && d4[3] == 255,
        "1x2 [0, 255] -> 1x4 gives the bilinear values 0, 64, 191, 255");
  /* fit: a 4x8 image to 2x2 keeps the centre 4x4 */
  int y0, x0, rh, rw;
  glow_fit_region(4, 8, 2, 2, &y0, &x0, &rh, &rw);
  check(y0 == 0 && x0 == 2 && rh == 4 && rw == 4, "fit 4x8 -> 2x2 crops the centre 4x4");
  glow_fit_region(9, 3, 6, 4, &y0, &x0, &rh, &rw);
  check(y0 == 2 && x0 == 0 && rh == 5 && rw == 3, "fit 9x3 -> 6x4 crops rows 2..6 (round(3 * 6 / 4) = 5)");
  /* channels */
  uint8_t rgb[6] = {255, 0, 0, 10, 200, 30}, g[2], back[6];
  glow_convert_channels(rgb, 3, g, 1, 2);
  /* 0.299 * 255 = 76.245 -> 76; (2990 + 117400 + 3420) / 1000 = 123.81 -> 124 */
  check(g[0] == 76 && g[1] == 124, "RGB -> gray is the rounded ITU-R 601 luma");
  glow_convert_channels(g, 1, back, 3, 2);
  check(back[0] == 76 && back[1] == 76 && back[2] == 76 && back[5] == 124, "gray -> RGB replicates");
}

static void test_jpeg(void) {
  char dir[] = "/tmp/glow-test-resize-XXXXXX";
  if (!mkdtemp(dir)) {
    check(0, "mkdtemp");
    return;
  }
  char path[256], bad[256], err[512];
  snprintf(path, sizeof path, "%s/a.jpg", dir);
  snprintf(bad, sizeof bad, "%s/b.jpg", dir);
  uint8_t img[16 * 24 * 3];
  for (int i = 0; i < 16 * 24; i++) img[3 * i] = 200, img[3 * i + 1] = 40, img[3 * i + 2] = 90;
  int rc = glow_jpeg_write(path, img, 16, 24, 3, 100, err, sizeof err);
  check(rc == GLOW_OK, "writes a JPEG");
  uint8_t *pix = NULL;
  int h = 0, w = 0, c = 0;
  rc = glow_image_read(path, NULL, &pix, &h, &w, &c, err, sizeof err);
  int ok = rc == GLOW_OK && h == 16 && w == 24 && c == 3;
  for (int i = 0; ok && i < 16 * 24 * 3; i++) ok = abs((int)pix[i] - (int)img[i]) <= 2;
  check(ok, "reads a constant RGB JPEG back within 2");
  free(pix);
  /* truncated: the first half of the file */
  FILE *f = fopen(path, "rb");
  uint8_t buf[8192];
  size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
  if (f) fclose(f);
  f = fopen(bad, "wb");
  if (f) {
    fwrite(buf, 1, n / 2, f);
    fclose(f);
  }
  rc = glow_image_read(bad, NULL, &pix, &h, &w, &c, err, sizeof err);
  check(rc == GLOW_EDATA && pix == NULL && strstr(err, "b.jpg") && strstr(err, "JPEG"), err);
  /* garbage after a JPEG signature */
  f = fopen(bad, "wb");
  if (f) {
    static const char junk[] = "\xff\xd8\xff\xe0 garbage garbage garbage";
    fwrite(junk, 1, sizeof junk - 1, f);
    fclose(f);
  }
  rc = glow_image_read(bad, NULL, &pix, &h, &w, &c, err, sizeof err);
  check(rc == GLOW_EDATA && pix == NULL && strstr(err, "b.jpg"), err);
  f = fopen(bad, "wb");
  if (f) {
    fwrite("hello", 1, 5, f);
    fclose(f);
  }
  rc = glow_image_read(bad, NULL, &pix, &h, &w, &c, err, sizeof err);
  check(rc == GLOW_EDATA && strstr(err, "not a PNG or JPEG file"), err);
  remove(path);
  remove(bad);
  rmdir(dir);
}

int main(void) {
  test_against_naive();
  test_exact();
  test_jpeg();
  return check_report("test_resize");
}
