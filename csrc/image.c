/*
 * image.c -- PNG files through libpng, JPEG files through libjpeg(-turbo),
 * and sample grids.
 *
 * glow_png_read decodes any PNG into 8-bit gray (c = 1) or RGB (c = 3):
 * palettes expand to RGB, low-depth gray expands to 8 bits, 16-bit samples
 * scale to 8 bits. Transparency (an alpha channel, or a tRNS chunk: palette
 * entries or one colour marked transparent) is composited over a background
 * colour, v = (a v + (255 - a) bg + 127) / 255 per channel, so a pixel of
 * alpha 0 is the background whatever colour the file stores under it (gray
 * images use the background's luma). glow_png_write writes 8-bit gray or
 * RGB to a temporary file in the target's directory and renames it into
 * place, so a reader never sees half a file. glow_image_grid lays a batch of
 * preprocessed float images out as one uint8 picture.
 *
 * glow_jpeg_read decodes a baseline or progressive JPEG into gray (c = 1)
 * or RGB (c = 3); CMYK and YCCK files are converted to RGB (Adobe files
 * store inverted CMYK, as Photoshop writes them). A libjpeg warning about
 * corrupt data (a premature end of file, a bad Huffman code, extraneous
 * bytes) counts as corruption: the file is refused, not half-decoded.
 * glow_image_read picks the decoder by the file's first bytes (the PNG
 * signature, or FF D8 FF for JPEG), never by its name.
 *
 * libpng and libjpeg report errors by longjmp: each setjmp sits in a small function
 * whose state lives in a struct owned by its caller, so nothing the error
 * path needs is an automatic variable changed after setjmp. The caller then
 * frees everything and returns a code with a message; nothing aborts.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* after stdio.h: jpeglib.h uses FILE and size_t */
#include <jpeglib.h>
#include <jerror.h>
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
  uint8_t bg[3];
  char toobig[160];
} png_reader;

/* pix {n, ch} with alpha last (ch 2 or 4) -> {n, ch - 1} in place, composited
   over bg (gray: over bg's ITU-R 601 luma). Each pixel is written at or
   below where it was read, so nothing is overwritten before it is read. */
static void composite(uint8_t *pix, size_t n, int ch, const uint8_t bg[3]) {
  int c = ch - 1;
  unsigned luma = (299u * bg[0] + 587u * bg[1] + 114u * bg[2] + 500u) / 1000u;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p = pix + i * (size_t)ch;
    uint8_t *d = pix + i * (size_t)c;
    unsigned a = p[c];
    for (int k = 0; k < c; k++) {
      unsigned b = c == 1 ? luma : bg[k];
      d[k] = (uint8_t)((p[k] * a + b * (255u - a) + 127u) / 255u);
    }
  }
}

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
  /* a tRNS chunk becomes an alpha channel, composited below */
  if (png_get_valid(s->png, s->info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(s->png);
  png_set_interlace_handling(s->png);
  png_read_update_info(s->png, s->info);
  int ch = png_get_channels(s->png, s->info);
  size_t rowbytes = png_get_rowbytes(s->png, s->info);
  if (ch < 1 || ch > 4 || png_get_bit_depth(s->png, s->info) != 8 ||
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
  if (ch == 2 || ch == 4) {
    composite(s->pix, (size_t)h * w, ch, s->bg);
    ch--;
  }
  s->h = (int)h;
  s->w = (int)w;
  s->c = ch;
  return 0;
}

static const uint8_t WHITE[3] = {255, 255, 255};

int glow_png_read(const char *path, const uint8_t *bg, uint8_t **pixels, int *h, int *w, int *c,
                  char *err, size_t errlen) {
  *pixels = NULL;
  png_reader s;
  memset(&s, 0, sizeof s);
  memcpy(s.bg, bg ? bg : WHITE, 3);
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

/* ------------------------------------------------------------------ JPEG */
/* the largest image glow_jpeg_read decodes (16384 x 16384): a header can
   claim 65500 x 65500 in a few bytes */
#define JPEG_MAX_PIXELS ((int64_t)1 << 28)

typedef struct {
  struct jpeg_error_mgr pub;
  jmp_buf jb;
  char msg[JMSG_LENGTH_MAX];
} jpeg_errmgr;

static void jpeg_on_error(j_common_ptr cinfo) {
  jpeg_errmgr *e = (jpeg_errmgr *)cinfo->err;
  if (!e->msg[0]) (*cinfo->err->format_message)(cinfo, e->msg);
  longjmp(e->jb, 1);
}

/* level < 0: a warning. Those about corrupt data end the decoding (as
   libjpeg-turbo's own TJFLAG_STOPONWARNING does); the two harmless ones
   (an unknown JFIF revision, an unknown Adobe transform code) pass. Trace
   messages (level >= 0) are ignored. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;
  int code = cinfo->err->msg_code;
  if (code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM) return;
  jpeg_on_error(cinfo);
}

static void jpeg_errmgr_init(jpeg_errmgr *e, struct jpeg_error_mgr **slot) {
  memset(e, 0, sizeof *e);
  *slot = jpeg_std_error(&e->pub);
  e->pub.error_exit = jpeg_on_error;
  e->pub.emit_message = jpeg_on_message;
}

typedef struct {
  FILE *fp;
  struct jpeg_decompress_struct cinfo;
  jpeg_errmgr jerr;
  int created;
  uint8_t *pix, *row;
  int h, w, c;
  int nomem;
  char why[160]; /* a refusal that is not libjpeg's (set before returning -1) */
} jpeg_reader;

static int jpeg_body(jpeg_reader *s) {
  if (setjmp(s->jerr.jb)) return -1;
  jpeg_create_decompress(&s->cinfo);
  s->created = 1;
  jpeg_stdio_src(&s->cinfo, s->fp);
  jpeg_read_header(&s->cinfo, TRUE);
  int cmyk = 0;
  switch (s->cinfo.jpeg_color_space) {
  case JCS_GRAYSCALE:
    s->cinfo.out_color_space = JCS_GRAYSCALE;
    break;
  case JCS_YCbCr:
  case JCS_RGB:
    s->cinfo.out_color_space = JCS_RGB;
    break;
  case JCS_CMYK:
  case JCS_YCCK:
    s->cinfo.out_color_space = JCS_CMYK;
    cmyk = 1;
    break;
  default:
    snprintf(s->why, sizeof s->why, "unsupported colour space (%d components)",
             s->cinfo.num_components);
    return -1;
  }
  if ((int64_t)s->cinfo.image_width * s->cinfo.image_height > JPEG_MAX_PIXELS) {
    snprintf(s->why, sizeof s->why, "its header says %ux%u pixels, more than glow decodes (2^28)",
             (unsigned)s->cinfo.image_width, (unsigned)s->cinfo.image_height);
    return -1;
  }
  jpeg_start_decompress(&s->cinfo);
  int oc = s->cinfo.output_components, w = (int)s->cinfo.output_width;
  int h = (int)s->cinfo.output_height, c = cmyk ? 3 : oc;
  if ((cmyk && oc != 4) || (!cmyk && oc != 1 && oc != 3) || w < 1 || h < 1) {
    snprintf(s->why, sizeof s->why, "unsupported pixel layout (%d components)", oc);
    return -1;
  }
  s->pix = (uint8_t *)malloc((size_t)h * w * c);
  if (cmyk) s->row = (uint8_t *)malloc((size_t)w * 4);
  if (!s->pix || (cmyk && !s->row)) {
    s->nomem = 1;
    return -1;
  }
  /* Adobe's CMYK is stored inverted (0 = full ink) */
  int inverted = s->cinfo.saw_Adobe_marker;
  while (s->cinfo.output_scanline < s->cinfo.output_height) {
    size_t y = s->cinfo.output_scanline;
    JSAMPROW r = cmyk ? s->row : s->pix + y * (size_t)w * c;
    if (jpeg_read_scanlines(&s->cinfo, &r, 1) != 1) {
      snprintf(s->why, sizeof s->why, "the decoder stopped at row %zu of %d", y, h);
      return -1;
    }
    if (cmyk) {
      uint8_t *d = s->pix + y * (size_t)w * 3;
      for (int x = 0; x < w; x++) {
        const uint8_t *p = s->row + 4 * (size_t)x;
        unsigned k = inverted ? p[3] : 255u - p[3];
        for (int ch = 0; ch < 3; ch++) {
          unsigned v = inverted ? p[ch] : 255u - p[ch];
          d[3 * x + ch] = (uint8_t)((v * k + 127u) / 255u);
        }
      }
    }
  }
  jpeg_finish_decompress(&s->cinfo);
  s->h = h;
  s->w = w;
  s->c = c;
  return 0;
}

int glow_jpeg_read(const char *path, uint8_t **pixels, int *h, int *w, int *c, char *err,
                   size_t errlen) {
  *pixels = NULL;
  jpeg_reader *s = (jpeg_reader *)calloc(1, sizeof *s);
  if (!s) return fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
  s->fp = fopen(path, "rb");
  if (!s->fp) {
    int e = errno;
    free(s);
    return fail(err, errlen, GLOW_EDATA, "cannot open %s: %s", path, strerror(e));
  }
  jpeg_errmgr_init(&s->jerr, &s->cinfo.err);
  int rc = GLOW_OK;
  if (jpeg_body(s)) {
    if (s->nomem)
      rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
    else
      rc = fail(err, errlen, GLOW_EDATA, "%s: corrupt or unsupported JPEG (%s)", path,
                s->why[0] ? s->why : s->jerr.msg[0] ? s->jerr.msg : "libjpeg error");
  }
  if (s->created) jpeg_destroy_decompress(&s->cinfo);
  fclose(s->fp);
  free(s->row);
  if (rc == GLOW_OK) {
    *pixels = s->pix;
    *h = s->h;
    *w = s->w;
    *c = s->c;
  } else {
    free(s->pix);
  }
  free(s);
  return rc;
}

typedef struct {
  FILE *fp;
  struct jpeg_compress_struct cinfo;
  jpeg_errmgr jerr;
  int created;
  const uint8_t *pix;
  int h, w, c, quality;
} jpeg_writer;

static int jpeg_write_body(jpeg_writer *s) {
  if (setjmp(s->jerr.jb)) return -1;
  jpeg_create_compress(&s->cinfo);
  s->created = 1;
  jpeg_stdio_dest(&s->cinfo, s->fp);
  s->cinfo.image_width = (JDIMENSION)s->w;
  s->cinfo.image_height = (JDIMENSION)s->h;
  s->cinfo.input_components = s->c;
  s->cinfo.in_color_space = s->c == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&s->cinfo);
  jpeg_set_quality(&s->cinfo, s->quality, TRUE);
  if (s->quality >= 100 && s->c == 3) /* no chroma subsampling at the top quality */
    for (int k = 0; k < 3; k++) s->cinfo.comp_info[k].h_samp_factor = s->cinfo.comp_info[k].v_samp_factor = 1;
  jpeg_start_compress(&s->cinfo, TRUE);
  size_t stride = (size_t)s->w * s->c;
  while (s->cinfo.next_scanline < s->cinfo.image_height) {
    JSAMPROW r = (JSAMPROW)(s->pix + s->cinfo.next_scanline * stride);
    jpeg_write_scanlines(&s->cinfo, &r, 1);
  }
  jpeg_finish_compress(&s->cinfo);
  return 0;
}

int glow_jpeg_write(const char *path, const uint8_t *pixels, int h, int w, int c, int quality,
                    char *err, size_t errlen) {
  if (h < 1 || w < 1 || h > 65500 || w > 65500 || (c != 1 && c != 3) || quality < 1 ||
      quality > 100)
    return fail(err, errlen, GLOW_EDATA,
                "%s: cannot write a %dx%d JPEG of %d channels at quality %d", path, h, w, c,
                quality);
  /* a temporary file beside path, renamed into place, as glow_png_write */
  size_t len = strlen(path);
  char *tmp = (char *)malloc(len + 16);
  jpeg_writer *s = (jpeg_writer *)calloc(1, sizeof *s);
  if (!tmp || !s) {
    free(tmp);
    free(s);
    return fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
  }
  snprintf(tmp, len + 16, "%s.tmp.XXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd >= 0) {
    fchmod(fd, 0644);
    s->fp = fdopen(fd, "wb");
    if (!s->fp) close(fd);
  }
  if (!s->fp) {
    int e = errno;
    if (fd >= 0) remove(tmp);
    free(tmp);
    free(s);
    return fail(err, errlen, GLOW_EDATA, "cannot write %s: %s", path, strerror(e));
  }
  s->pix = pixels;
  s->h = h;
  s->w = w;
  s->c = c;
  s->quality = quality;
  jpeg_errmgr_init(&s->jerr, &s->cinfo.err);
  int rc = GLOW_OK;
  if (jpeg_write_body(s))
    rc = fail(err, errlen, GLOW_EDATA, "cannot write %s: %s", path,
              s->jerr.msg[0] ? s->jerr.msg : "libjpeg error");
  if (s->created) jpeg_destroy_compress(&s->cinfo);
  int e = 0;
  if (fflush(s->fp) != 0 || ferror(s->fp)) e = errno ? errno : EIO;
  if (fclose(s->fp) != 0 && !e) e = errno ? errno : EIO;
  if (rc == GLOW_OK && e)
    rc = fail(err, errlen, GLOW_EDATA, "cannot write %s: %s", path, strerror(e));
  if (rc == GLOW_OK && rename(tmp, path) != 0)
    rc = fail(err, errlen, GLOW_EDATA, "cannot write %s: %s", path, strerror(errno));
  if (rc != GLOW_OK) remove(tmp);
  free(tmp);
  free(s);
  return rc;
}

/* ------------------------------------------------------------------ by signature */
int glow_image_read(const char *path, const uint8_t *bg, uint8_t **pixels, int *h, int *w, int *c,
                    char *err, size_t errlen) {
  *pixels = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return fail(err, errlen, GLOW_EDATA, "cannot open %s: %s", path, strerror(errno));
  unsigned char sig[8] = {0};
  size_t got = fread(sig, 1, 8, f);
  int e = ferror(f) ? errno : 0;
  fclose(f);
  if (e) return fail(err, errlen, GLOW_EDATA, "cannot read %s: %s", path, strerror(e));
  if (got == 8 && !png_sig_cmp(sig, 0, 8)) return glow_png_read(path, bg, pixels, h, w, c, err, errlen);
  if (got >= 3 && sig[0] == 0xFF && sig[1] == 0xD8 && sig[2] == 0xFF)
    return glow_jpeg_read(path, pixels, h, w, c, err, errlen);
  return fail(err, errlen, GLOW_EDATA, "%s: not a PNG or JPEG file (unknown signature%s)", path,
              got == 0 ? ": empty file" : "");
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
