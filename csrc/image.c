/*
 * image.c -- PNG files through libpng, and sample grids.
 *
 * glow_png_read decodes any PNG into 8-bit gray (c = 1) or RGB (c = 3):
 * palettes expand to RGB, low-depth gray expands to 8 bits, 16-bit samples
 * scale to 8 bits, alpha is stripped. glow_png_write writes 8-bit gray or
 * RGB to a temporary file in the target's directory and renames it into
 * place, so a reader never sees half a file. glow_image_grid lays a batch of
 * preprocessed float images out as one uint8 picture.
 *
 * libpng reports errors by longjmp: each setjmp sits in a small function
 * whose state lives in a struct owned by its caller, so nothing the error
 * path needs is an automatic variable changed after setjmp. The caller then
 * frees everything and returns a code with a message; nothing aborts.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "glow.h"

#define fail glow_error /* message into err, return code */

/* libpng's error and warning hooks: keep the first message, then unwind */
typedef struct {
  char msg[200];
} png_errmsg;

static void on_error(png_structp png, png_const_charp msg) {
  png_errmsg *e = (png_errmsg *)png_get_error_ptr(png);
  if (e && !e->msg[0]) snprintf(e->msg, sizeof e->msg, "%s", msg);
  png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
  (void)png;
  (void)msg;
}

/* ------------------------------------------------------------------ read */
typedef struct {
  FILE *fp;
  png_structp png;
  png_infop info;
  uint8_t *pix;
  png_bytep *rows;
  int h, w, c;
  int nomem;
  long long file_bytes;
  char toobig[160];
} png_reader;

static int read_body(png_reader *s) {
  if (setjmp(png_jmpbuf(s->png))) return -1;
  png_init_io(s->png, s->fp);
  png_set_sig_bytes(s->png, 8);
  png_read_info(s->png, s->info);
  png_uint_32 w = png_get_image_width(s->png, s->info);
  png_uint_32 h = png_get_image_height(s->png, s->info);
  int bit_depth = png_get_bit_depth(s->png, s->info);
  int ctype = png_get_color_type(s->png, s->info);
  /* deflate packs at most 1032 bytes into one, so the filtered rows (one
     filter byte each) cannot outgrow 1032 times the file: a header that
     claims more is a lie, refused before the pixel buffer is allocated */
  double stream = (double)h * ((double)png_get_rowbytes(s->png, s->info) + 1);
  if (s->file_bytes >= 0 && stream > 1032.0 * (double)s->file_bytes + 65536.0) {
    snprintf(s->toobig, sizeof s->toobig,
             "its header says %lux%lu pixels, more than its %lld bytes can hold", (unsigned long)w,
             (unsigned long)h, s->file_bytes);
    png_error(s->png, s->toobig);
  }
  if (bit_depth == 16) png_set_scale_16(s->png);
  if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(s->png);
  if (ctype == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(s->png);
  if (ctype & PNG_COLOR_MASK_ALPHA || ctype == PNG_COLOR_TYPE_PALETTE)
    png_set_strip_alpha(s->png);
  png_set_interlace_handling(s->png);
  png_read_update_info(s->png, s->info);
  int ch = png_get_channels(s->png, s->info);
  size_t rowbytes = png_get_rowbytes(s->png, s->info);
  if ((ch != 1 && ch != 3) || png_get_bit_depth(s->png, s->info) != 8 ||
      rowbytes != (size_t)w * (size_t)ch)
    png_error(s->png, "unsupported pixel layout");
  s->pix = (uint8_t *)malloc((size_t)h * rowbytes);
  s->rows = (png_bytep *)malloc(sizeof(png_bytep) * h);
  if (!s->pix || !s->rows) {
    s->nomem = 1;
    return -1;
  }
  for (png_uint_32 i = 0; i < h; i++) s->rows[i] = s->pix + (size_t)i * rowbytes;
  png_read_image(s->png, s->rows);
  png_read_end(s->png, NULL);
  s->h = (int)h;
  s->w = (int)w;
  s->c = ch;
  return 0;
}

int glow_png_read(const char *path, uint8_t **pixels, int *h, int *w, int *c, char *err,
                  size_t errlen) {
  *pixels = NULL;
  png_reader s;
  memset(&s, 0, sizeof s);
  png_errmsg em = {{0}};
  s.fp = fopen(path, "rb");
  if (!s.fp) return fail(err, errlen, GLOW_EDATA, "cannot open %s: %s", path, strerror(errno));
  unsigned char sig[8];
  size_t got = fread(sig, 1, 8, s.fp);
  if (got < 8 && ferror(s.fp)) {
    int e = errno;
    fclose(s.fp);
    return fail(err, errlen, GLOW_EDATA, "cannot read %s: %s", path, strerror(e));
  }
  if (got < 8 || png_sig_cmp(sig, 0, 8)) {
    fclose(s.fp);
    return fail(err, errlen, GLOW_EDATA, "%s: not a PNG file (bad signature)", path);
  }
  struct stat st;
  s.file_bytes = fstat(fileno(s.fp), &st) == 0 && S_ISREG(st.st_mode) ? (long long)st.st_size : -1;
  int rc = GLOW_OK;
  s.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &em, on_error, on_warning);
  if (s.png) s.info = png_create_info_struct(s.png);
  if (!s.png || !s.info) {
    rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
  } else if (read_body(&s)) {
    if (s.nomem)
      rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
    else
      rc = fail(err, errlen, GLOW_EDATA, "%s: corrupt or truncated PNG (%s)", path,
                em.msg[0] ? em.msg : "libpng error");
  }
  png_destroy_read_struct(s.png ? &s.png : NULL, s.info ? &s.info : NULL, NULL);
  fclose(s.fp);
  free(s.rows);
  if (rc != GLOW_OK) {
    free(s.pix);
    return rc;
  }
  *pixels = s.pix;
  *h = s.h;
  *w = s.w;
  *c = s.c;
  return GLOW_OK;
}

/* ------------------------------------------------------------------ write */
typedef struct {
  FILE *fp;
  png_structp png;
  png_infop info;
  const uint8_t *pix;
  int h, w, c;
} png_writer;

static int write_body(png_writer *s) {
  if (setjmp(png_jmpbuf(s->png))) return -1;
  png_init_io(s->png, s->fp);
  png_set_IHDR(s->png, s->info, (png_uint_32)s->w, (png_uint_32)s->h, 8,
               s->c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(s->png, s->info);
  size_t stride = (size_t)s->w * (size_t)s->c;
  for (int i = 0; i < s->h; i++) png_write_row(s->png, s->pix + (size_t)i * stride);
  png_write_end(s->png, s->info);
  return 0;
}

int glow_png_write(const char *path, const uint8_t *pixels, int h, int w, int c, char *err,
                   size_t errlen) {
  if (h < 1 || w < 1 || (c != 1 && c != 3))
    return fail(err, errlen, GLOW_EDATA, "%s: cannot write a %dx%d image of %d channels", path, h,
                w, c);
  size_t len = strlen(path);
  char *tmp = (char *)malloc(len + 16);
  if (!tmp) return fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
  snprintf(tmp, len + 16, "%s.tmp.XXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int e = errno;
    free(tmp);
    return fail(err, errlen, GLOW_EDATA, "cannot write %s: %s", path, strerror(e));
  }
  fchmod(fd, 0644);
  png_writer s;
  memset(&s, 0, sizeof s);
  png_errmsg em = {{0}};
  s.pix = pixels;
  s.h = h;
  s.w = w;
  s.c = c;
  int rc = GLOW_OK;
  s.fp = fdopen(fd, "wb");
  if (!s.fp) {
    rc = fail(err, errlen, GLOW_EDATA, "cannot write %s: %s", path, strerror(errno));
    close(fd);
  } else {
    s.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &em, on_error, on_warning);
    if (s.png) s.info = png_create_info_struct(s.png);
    if (!s.png || !s.info)
      rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
    else if (write_body(&s))
      rc = fail(err, errlen, GLOW_EDATA, "cannot write %s: %s", path,
                em.msg[0] ? em.msg : "libpng error");
    png_destroy_write_struct(s.png ? &s.png : NULL, s.info ? &s.info : NULL);
    int e = 0;
    if (fflush(s.fp) != 0 || ferror(s.fp)) e = errno ? errno : EIO;
    if (fclose(s.fp) != 0 && !e) e = errno ? errno : EIO;
    if (rc == GLOW_OK && e) rc = fail(err, errlen, GLOW_EDATA, "cannot write %s: %s", path,
                                      strerror(e));
  }
  if (rc == GLOW_OK && rename(tmp, path) != 0)
    rc = fail(err, errlen, GLOW_EDATA, "cannot write %s: %s", path, strerror(errno));
  if (rc != GLOW_OK) remove(tmp);
  free(tmp);
  return rc;
}

/* ------------------------------------------------------------------ grid */
void glow_grid_size(int n, int h, int w, int cols, int padding, int *gh, int *gw) {
  if (cols > n) cols = n;
  if (cols < 1) cols = 1;
  int rows = (n + cols - 1) / cols;
  if (rows < 1) rows = 1;
  *gh = rows * h + (rows - 1) * padding;
  *gw = cols * w + (cols - 1) * padding;
}

static uint8_t to_byte(float v) {
  double p = floor(((double)v + 0.5) * 256.0);
  if (!(p > 0)) return 0; /* also NaN */
  if (p > 255) return 255;
  return (uint8_t)p;
}

void glow_image_grid(const float *x, int n, int h, int w, int c, int cols, int padding,
                     uint8_t *out) {
  int gh, gw;
  glow_grid_size(n, h, w, cols, padding, &gh, &gw);
  if (cols > n) cols = n;
  if (cols < 1) cols = 1;
  memset(out, 0, (size_t)gh * gw * c);
  for (int k = 0; k < n; k++) {
    int r0 = (k / cols) * (h + padding), c0 = (k % cols) * (w + padding);
    const float *img = x + (size_t)k * h * w * c;
    for (int i = 0; i < h; i++) {
      uint8_t *dst = out + ((size_t)(r0 + i) * gw + c0) * c;
      const float *src = img + (size_t)i * w * c;
      for (int j = 0; j < w * c; j++) dst[j] = to_byte(src[j]);
    }
  }
}
