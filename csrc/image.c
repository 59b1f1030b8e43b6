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
 * glow_image_decode is the same decoding for image folders, bounded before
 * it starts: a header that says more than max_pixels is refused before
 * anything is allocated; the rows (png_read_row, jpeg_read_scanlines) go
 * through a glow_fitter into the target as they are decoded, so no whole
 * image is held unless the format needs it (an interlaced PNG's passes, a
 * progressive JPEG's coefficients, which libjpeg keeps); a JPEG whose target
 * is 2, 4 or 8 times smaller is decoded that much smaller by libjpeg's DCT
 * scaling; libjpeg's progress monitor stops a file past max_scans scans; and
 * each decode reserves its working memory, estimated from the header, in a
 * glow_decode_gate shared by the decodes running at once. glow_image_synth
 * writes synthetic images row by row, for the specs and benchmarks.
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
#include <pthread.h>
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

/* ------------------------------------------------------------------ decoding targets */
/* What a decoder makes of its rows: converted to dc channels and fit
 * (glow_fit) to dh x dw, row by row through a glow_fitter, into dst. RGB ->
 * gray is done on each row before fitting, gray -> RGB on the fitted image
 * (in place), as the whole-image path (convert, then fit; or fit, then
 * convert) did, so the values are the same. */
typedef struct {
  glow_fitter *fit;
  uint8_t *conv; /* {sw}: a row converted to gray, when dc < pc */
  int sw, pc, dc, dh, dw;
  uint8_t *dst; /* {dh, dw, dc} */
} sink;

static size_t sink_bytes(int sh, int sw, int pc, int dh, int dw, int dc) {
  int y0, x0, rh, rw;
  glow_fit_region(sh, sw, dh, dw, &y0, &x0, &rh, &rw);
  return glow_fitter_bytes(rh, rw, dc < pc ? dc : pc, dh, dw) + (dc < pc ? (size_t)sw : 0);
}

static int sink_open(sink *k, int sh, int sw, int pc, int dh, int dw, int dc, uint8_t *dst) {
  int y0, x0, rh, rw;
  glow_fit_region(sh, sw, dh, dw, &y0, &x0, &rh, &rw);
  k->sw = sw;
  k->pc = pc;
  k->dc = dc;
  k->dh = dh;
  k->dw = dw;
  k->dst = dst;
  k->fit = glow_fitter_new(sh, sw, dc < pc ? dc : pc, y0, x0, rh, rw, dst, dh, dw);
  if (dc < pc) k->conv = (uint8_t *)malloc((size_t)sw);
  return !k->fit || (dc < pc && !k->conv) ? -1 : 0;
}

static void sink_row(sink *k, const uint8_t *row) {
  if (k->conv) {
    glow_convert_channels(row, k->pc, k->conv, k->dc, (size_t)k->sw);
    glow_fitter_push(k->fit, k->conv);
  } else {
    glow_fitter_push(k->fit, row);
  }
}

/* after the last row: gray -> RGB in place, from the end (3 p >= p) */
static void sink_finish(sink *k) {
  if (k->dc <= k->pc) return;
  for (size_t p = (size_t)k->dh * k->dw; p-- > 0;)
    k->dst[3 * p] = k->dst[3 * p + 1] = k->dst[3 * p + 2] = k->dst[p];
}

static void sink_free(sink *k) {
  glow_fitter_free(k->fit);
  free(k->conv);
  memset(k, 0, sizeof *k);
}

/* What a decode is asked for and gives: the target (dh, dw 0: the file's
 * size; dc 0: its channels), written to dst, or to out (allocated once the
 * header is read) when dst is NULL; h, w, c the result's shape. */
typedef struct {
  int dh, dw, dc;
  uint8_t *dst, *out;
  int h, w, c;
  int sh, sw; /* the decoded image's size */
} target;

/* the shape of the result for a source {sh, sw, pc}, out allocated when
   wanted (the caller frees it) */
static void target_shape(target *t, int sh, int sw, int pc) {
  t->sh = sh;
  t->sw = sw;
  t->h = t->dh ? t->dh : sh;
  t->w = t->dw ? t->dw : sw;
  t->c = t->dc ? t->dc : pc;
}

static size_t target_bytes(const target *t) {
  return t->dst ? 0 : (size_t)t->h * (size_t)t->w * (size_t)t->c;
}

static int target_alloc(target *t) {
  if (t->dst) return 0;
  t->out = (uint8_t *)malloc(target_bytes(t));
  t->dst = t->out;
  return t->out ? 0 : -1;
}

/* ------------------------------------------------------------------ the decode gate */
/* Decodes running at once (glow_load_images' threads) hold together at most
 * the budget of working memory, each decode's as estimated from its header
 * before it allocates; one estimated above the budget waits until it can run
 * alone, and the decodes that come after it wait for it. */
struct glow_decode_gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t budget, used;
  int active, big_waiting;
};

glow_decode_gate *glow_decode_gate_new(size_t budget) {
  glow_decode_gate *g = (glow_decode_gate *)calloc(1, sizeof *g);
  if (!g) return NULL;
  if (pthread_mutex_init(&g->mu, NULL)) {
    free(g);
    return NULL;
  }
  if (pthread_cond_init(&g->cv, NULL)) {
    pthread_mutex_destroy(&g->mu);
    free(g);
    return NULL;
  }
  g->budget = budget;
  return g;
}

void glow_decode_gate_free(glow_decode_gate *g) {
  if (!g) return;
  pthread_cond_destroy(&g->cv);
  pthread_mutex_destroy(&g->mu);
  free(g);
}

static void gate_enter(glow_decode_gate *g, size_t bytes) {
  if (!g) return;
  pthread_mutex_lock(&g->mu);
  if (bytes > g->budget) {
    g->big_waiting++;
    while (g->active > 0) pthread_cond_wait(&g->cv, &g->mu);
    g->big_waiting--;
  } else {
    while (g->big_waiting > 0 || (g->active > 0 && g->used + bytes > g->budget))
      pthread_cond_wait(&g->cv, &g->mu);
  }
  g->used += bytes;
  g->active++;
  pthread_mutex_unlock(&g->mu);
}

static void gate_leave(glow_decode_gate *g, size_t bytes) {
  if (!g) return;
  pthread_mutex_lock(&g->mu);
  g->used -= bytes;
  g->active--;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

/* the message of an image over the pixel limit */
static void over_limit(char *why, size_t len, unsigned long w, unsigned long h, int64_t limit,
                       const char *name) {
  snprintf(why, len, "its header says %lux%lu pixels, over the limit of %lld%s%s%s", w, h,
           (long long)limit, name ? " (" : "", name ? name : "", name ? ")" : "");
}

/* ------------------------------------------------------------------ read */
typedef struct {
  FILE *fp;
  png_structp png;
  png_infop info;
  const glow_decode_opts *o;
  target *t;
  sink k;
  uint8_t *pix;     /* an interlaced image, whole */
  png_bytep *rows;  /* its rows */
  uint8_t *row;     /* one row of a plain image */
  size_t reserved;  /* bytes held in o->gate */
  int nomem;
  long long file_bytes;
  char why[200];    /* a refusal that is not libpng's (set before returning -1) */
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

static const uint8_t WHITE[3] = {255, 255, 255};

static int read_body(png_reader *s) {
  if (setjmp(png_jmpbuf(s->png))) return -1;
  png_init_io(s->png, s->fp);
  png_set_sig_bytes(s->png, 8);
  png_read_info(s->png, s->info);
  png_uint_32 w = png_get_image_width(s->png, s->info);
  png_uint_32 h = png_get_image_height(s->png, s->info);
  int bit_depth = png_get_bit_depth(s->png, s->info);
  int ctype = png_get_color_type(s->png, s->info);
  if ((double)w * (double)h > (double)s->o->max_pixels) {
    over_limit(s->why, sizeof s->why, w, h, s->o->max_pixels, s->o->limit_name);
    return -1;
  }
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
  int passes = png_set_interlace_handling(s->png);
  png_read_update_info(s->png, s->info);
  int ch = png_get_channels(s->png, s->info);
  size_t rowbytes = png_get_rowbytes(s->png, s->info);
  if (ch < 1 || ch > 4 || png_get_bit_depth(s->png, s->info) != 8 ||
      rowbytes != (size_t)w * (size_t)ch)
    png_error(s->png, "unsupported pixel layout");
  int pc = ch == 2 || ch == 4 ? ch - 1 : ch; /* alpha composited away */
  target *t = s->t;
  target_shape(t, (int)h, (int)w, pc);
  /* the working memory: libpng's two rows (this and the previous), the
     whole image when interlaced (the passes fill it in turn) or one row,
     the fitter, the result when made here, and zlib's window */
  size_t whole = passes > 1 ? (size_t)h * (rowbytes + sizeof(png_bytep)) : rowbytes;
  size_t need = 2 * rowbytes + whole + sink_bytes((int)h, (int)w, pc, t->h, t->w, t->c) +
                target_bytes(t) + ((size_t)64 << 10);
  gate_enter(s->o->gate, need);
  s->reserved = need;
  if (target_alloc(t) || sink_open(&s->k, (int)h, (int)w, pc, t->h, t->w, t->c, t->dst)) {
    s->nomem = 1;
    return -1;
  }
  const uint8_t *bg = s->o->bg ? s->o->bg : WHITE;
  if (passes > 1) {
    s->pix = (uint8_t *)malloc((size_t)h * rowbytes);
    s->rows = (png_bytep *)malloc(sizeof(png_bytep) * h);
    if (!s->pix || !s->rows) {
      s->nomem = 1;
      return -1;
    }
    for (png_uint_32 i = 0; i < h; i++) s->rows[i] = s->pix + (size_t)i * rowbytes;
    png_read_image(s->png, s->rows);
    for (png_uint_32 i = 0; i < h; i++) {
      if (pc < ch) composite(s->rows[i], w, ch, bg);
      sink_row(&s->k, s->rows[i]);
    }
  } else {
    s->row = (uint8_t *)malloc(rowbytes);
    if (!s->row) {
      s->nomem = 1;
      return -1;
    }
    for (png_uint_32 i = 0; i < h; i++) {
      png_read_row(s->png, s->row, NULL);
      if (pc < ch) composite(s->row, w, ch, bg);
      sink_row(&s->k, s->row);
    }
  }
  png_read_end(s->png, NULL);
  sink_finish(&s->k);
  return 0;
}

/* fp is past the 8 signature bytes (checked); closes it */
static int png_decode(FILE *fp, const char *path, const glow_decode_opts *o, target *t, char *err,
                      size_t errlen) {
  png_reader s;
  memset(&s, 0, sizeof s);
  png_errmsg em = {{0}};
  s.fp = fp;
  s.o = o;
  s.t = t;
  struct stat st;
  s.file_bytes = fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode) ? (long long)st.st_size : -1;
  int rc = GLOW_OK;
  s.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &em, on_error, on_warning);
  if (s.png) s.info = png_create_info_struct(s.png);
  if (!s.png || !s.info) {
    rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
  } else if (read_body(&s)) {
    if (s.nomem)
      rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory decoding its %dx%d pixels", path,
                t->sw, t->sh);
    else if (s.why[0])
      rc = fail(err, errlen, GLOW_EDATA, "%s: %s", path, s.why);
    else
      rc = fail(err, errlen, GLOW_EDATA, "%s: corrupt or truncated PNG (%s)", path,
                em.msg[0] ? em.msg : "libpng error");
  }
  png_destroy_read_struct(s.png ? &s.png : NULL, s.info ? &s.info : NULL, NULL);
  fclose(fp);
  free(s.rows);
  free(s.pix);
  free(s.row);
  sink_free(&s.k);
  if (s.reserved) gate_leave(o->gate, s.reserved);
  if (rc != GLOW_OK) {
    free(t->out);
    t->out = NULL;
  }
  return rc;
}

/* the options of the whole-image readers: no limit beyond limit */
static glow_decode_opts whole_opts(const uint8_t *bg, int64_t limit) {
  glow_decode_opts o;
  memset(&o, 0, sizeof o);
  o.bg = bg;
  o.max_pixels = limit;
  o.max_scans = GLOW_JPEG_MAX_SCANS;
  return o;
}

/* a whole image at its own size and channels into *pixels */
static int whole_result(int rc, target *t, uint8_t **pixels, int *h, int *w, int *c) {
  if (rc != GLOW_OK) return rc;
  *pixels = t->out;
  *h = t->h;
  *w = t->w;
  *c = t->c;
  return GLOW_OK;
}

int glow_png_read(const char *path, const uint8_t *bg, uint8_t **pixels, int *h, int *w, int *c,
                  char *err, size_t errlen) {
  *pixels = NULL;
  FILE *fp = fopen(path, "rb");
  if (!fp) return fail(err, errlen, GLOW_EDATA, "cannot open %s: %s", path, strerror(errno));
  unsigned char sig[8];
  size_t got = fread(sig, 1, 8, fp);
  if (got < 8 && ferror(fp)) {
    int e = errno;
    fclose(fp);
    return fail(err, errlen, GLOW_EDATA, "cannot read %s: %s", path, strerror(e));
  }
  if (got < 8 || png_sig_cmp(sig, 0, 8)) {
    fclose(fp);
    return fail(err, errlen, GLOW_EDATA, "%s: not a PNG file (bad signature)", path);
  }
  glow_decode_opts o = whole_opts(bg, INT64_MAX);
  target t = {0};
  return whole_result(png_decode(fp, path, &o, &t, err, errlen), &t, pixels, h, w, c);
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
  struct jpeg_progress_mgr progress;
  int created;
  const glow_decode_opts *o;
  target *t;
  sink k;
  uint8_t *row, *rgb; /* one output row; a CMYK row converted */
  size_t reserved;    /* bytes held in o->gate */
  int nomem;
  char why[200]; /* a refusal that is not libjpeg's (set before returning -1) */
} jpeg_reader;

/* libjpeg calls this while it reads a multi-scan (progressive) file's scans,
   each of which may cost a pass over the whole image: past max_scans the
   file is refused (as djpeg -maxscans does) */
static void jpeg_on_progress(j_common_ptr cinfo) {
  jpeg_reader *s = (jpeg_reader *)cinfo->client_data;
  int scans = s->cinfo.input_scan_number;
  if (scans > s->o->max_scans) {
    snprintf(s->why, sizeof s->why,
             "corrupt or unsupported JPEG (more than %d scans; a progressive file has about 10)",
             s->o->max_scans);
    longjmp(s->jerr.jb, 1);
  }
}

/* the bytes libjpeg holds for a multi-scan file's coefficients: every
   component's blocks (rounded up to whole MCUs), 64 coefficients of 2 bytes */
static size_t jpeg_coef_bytes(const struct jpeg_decompress_struct *ci) {
  if (!jpeg_has_multiple_scans((j_decompress_ptr)ci)) return 0;
  size_t n = 0;
  for (int k = 0; k < ci->num_components; k++) {
    const jpeg_component_info *p = &ci->comp_info[k];
    size_t bw = ((size_t)p->width_in_blocks + p->h_samp_factor - 1) / p->h_samp_factor * p->h_samp_factor;
    size_t bh = ((size_t)p->height_in_blocks + p->v_samp_factor - 1) / p->v_samp_factor * p->v_samp_factor;
    n += bw * bh * DCTSIZE2 * sizeof(JCOEF);
  }
  return n;
}

static int jpeg_body(jpeg_reader *s) {
  if (setjmp(s->jerr.jb)) return -1;
  jpeg_create_decompress(&s->cinfo);
  s->created = 1;
  s->cinfo.client_data = s;
  s->progress.progress_monitor = jpeg_on_progress;
  s->cinfo.progress = &s->progress;
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
    snprintf(s->why, sizeof s->why, "corrupt or unsupported JPEG (unsupported colour space (%d components))",
             s->cinfo.num_components);
    return -1;
  }
  unsigned iw = s->cinfo.image_width, ih = s->cinfo.image_height;
  if ((int64_t)iw * ih > s->o->max_pixels) {
    over_limit(s->why, sizeof s->why, iw, ih, s->o->max_pixels, s->o->limit_name);
    return -1;
  }
  /* a target at least 2, 4 or 8 times smaller each way: libjpeg's DCT
     scaling decodes the image that much smaller (as Pillow's draft mode),
     which the fit then brings to the target */
  target *t = s->t;
  if (t->dh > 0)
    for (unsigned d = 8; d >= 2; d /= 2)
      if (ih >= d * (unsigned)t->dh && iw >= d * (unsigned)t->dw) {
        s->cinfo.scale_num = 1;
        s->cinfo.scale_denom = d;
        break;
      }
  jpeg_calc_output_dimensions(&s->cinfo);
  int oc = s->cinfo.output_components, w = (int)s->cinfo.output_width;
  int h = (int)s->cinfo.output_height, c = cmyk ? 3 : oc;
  if ((cmyk && oc != 4) || (!cmyk && oc != 1 && oc != 3) || w < 1 || h < 1) {
    snprintf(s->why, sizeof s->why, "corrupt or unsupported JPEG (unsupported pixel layout (%d components))", oc);
    return -1;
  }
  target_shape(t, h, w, c);
  /* the working memory: the coefficients of a multi-scan file, libjpeg's
     row buffers (a few groups of up to 4 x 8 rows per component, counted
     generously), our rows, the fitter and the result when made here */
  size_t need = jpeg_coef_bytes(&s->cinfo) +
                (size_t)w * (size_t)s->cinfo.num_components * 128 + (size_t)w * (oc + 3) +
                sink_bytes(h, w, c, t->h, t->w, t->c) + target_bytes(t) + ((size_t)1 << 20);
  gate_enter(s->o->gate, need);
  s->reserved = need;
  s->row = (uint8_t *)malloc((size_t)w * oc);
  if (cmyk) s->rgb = (uint8_t *)malloc((size_t)w * 3);
  if (!s->row || (cmyk && !s->rgb) || target_alloc(t) ||
      sink_open(&s->k, h, w, c, t->h, t->w, t->c, t->dst)) {
    s->nomem = 1;
    return -1;
  }
  jpeg_start_decompress(&s->cinfo);
  if ((int)s->cinfo.output_width != w || (int)s->cinfo.output_height != h ||
      s->cinfo.output_components != oc) {
    snprintf(s->why, sizeof s->why, "corrupt or unsupported JPEG (its output size changed)");
    return -1;
  }
  /* Adobe's CMYK is stored inverted (0 = full ink) */
  int inverted = s->cinfo.saw_Adobe_marker;
  while (s->cinfo.output_scanline < s->cinfo.output_height) {
    size_t y = s->cinfo.output_scanline;
    JSAMPROW r = s->row;
    if (jpeg_read_scanlines(&s->cinfo, &r, 1) != 1) {
      snprintf(s->why, sizeof s->why, "corrupt or unsupported JPEG (the decoder stopped at row %zu of %d)", y, h);
      return -1;
    }
    if (cmyk) {
      uint8_t *d = s->rgb;
      for (int x = 0; x < w; x++) {
        const uint8_t *p = s->row + 4 * (size_t)x;
        unsigned k = inverted ? p[3] : 255u - p[3];
        for (int ch = 0; ch < 3; ch++) {
          unsigned v = inverted ? p[ch] : 255u - p[ch];
          d[3 * x + ch] = (uint8_t)((v * k + 127u) / 255u);
        }
      }
    }
    sink_row(&s->k, cmyk ? s->rgb : s->row);
  }
  jpeg_finish_decompress(&s->cinfo);
  sink_finish(&s->k);
  return 0;
}

/* fp at the file's start; closes it */
static int jpeg_decode(FILE *fp, const char *path, const glow_decode_opts *o, target *t, char *err,
                       size_t errlen) {
  jpeg_reader *s = (jpeg_reader *)calloc(1, sizeof *s);
  if (!s) {
    fclose(fp);
    return fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
  }
  s->fp = fp;
  s->o = o;
  s->t = t;
  jpeg_errmgr_init(&s->jerr, &s->cinfo.err);
  int rc = GLOW_OK;
  if (jpeg_body(s)) {
    if (s->nomem)
      rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory decoding its %dx%d pixels", path,
                t->sw, t->sh);
    else if (s->why[0])
      rc = fail(err, errlen, GLOW_EDATA, "%s: %s", path, s->why);
    else
      rc = fail(err, errlen, GLOW_EDATA, "%s: corrupt or unsupported JPEG (%s)", path,
                s->jerr.msg[0] ? s->jerr.msg : "libjpeg error");
  }
  if (s->created) jpeg_destroy_decompress(&s->cinfo);
  fclose(fp);
  free(s->row);
  free(s->rgb);
  sink_free(&s->k);
  if (s->reserved) gate_leave(o->gate, s->reserved);
  if (rc != GLOW_OK) {
    free(t->out);
    t->out = NULL;
  }
  free(s);
  return rc;
}

int glow_jpeg_read(const char *path, uint8_t **pixels, int *h, int *w, int *c, char *err,
                   size_t errlen) {
  *pixels = NULL;
  FILE *fp = fopen(path, "rb");
  if (!fp) return fail(err, errlen, GLOW_EDATA, "cannot open %s: %s", path, strerror(errno));
  glow_decode_opts o = whole_opts(NULL, JPEG_MAX_PIXELS);
  target t = {0};
  return whole_result(jpeg_decode(fp, path, &o, &t, err, errlen), &t, pixels, h, w, c);
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

/* ------------------------------------------------------------------ synthetic images */
/* A synthetic image, row by row: zeros; or smooth, per channel k
 *   v = 128 + 60 sin(tau (fx (1 + k) + 0.3 k)) cos(tau fy (2 - k / 2))
 *           + 40 sin(tau (fx + fy) (1.5 + k)),   fx = x / w, fy = y / h,
 * (the column factors tabulated once, so a pixel costs a few products); or
 * "photo": smooth plus seeded per-pixel noise in -24..24. */
typedef struct {
  FILE *fp;
  png_structp png;
  png_infop info;
  struct jpeg_compress_struct cinfo;
  jpeg_errmgr jerr;
  int created;
  uint8_t *row;
  double *col; /* {3, w, c}: 60 sin(...), sin(tau fx (1.5 + k)), cos(tau fx (1.5 + k)) */
  int h, w, c, pattern, quality, layout;
  uint64_t seed;
} synth_writer;

static const double TAU = 6.283185307179586;

static int synth_tables(synth_writer *s) {
  size_t n = (size_t)s->w * s->c;
  s->col = (double *)malloc(sizeof(double) * 3 * n);
  if (!s->col) return -1;
  for (int x = 0; x < s->w; x++) {
    double fx = (double)x / s->w;
    for (int k = 0; k < s->c; k++) {
      size_t i = (size_t)x * s->c + k;
      s->col[i] = 60 * sin(TAU * (fx * (1 + k) + 0.3 * k));
      s->col[n + i] = sin(TAU * fx * (1.5 + k));
      s->col[2 * n + i] = cos(TAU * fx * (1.5 + k));
    }
  }
  return 0;
}

static void synth_row(synth_writer *s, int y) {
  int w = s->w, c = s->c;
  uint8_t *row = s->row;
  if (s->pattern == GLOW_SYNTH_ZERO) {
    memset(row, 0, (size_t)w * c);
    return;
  }
  size_t n = (size_t)w * c;
  double fy = (double)y / s->h, ra[3], rs[3], rc[3];
  for (int k = 0; k < c; k++) {
    ra[k] = cos(TAU * fy * (2 - 0.5 * k));
    rs[k] = 40 * sin(TAU * fy * (1.5 + k));
    rc[k] = 40 * cos(TAU * fy * (1.5 + k));
  }
  uint64_t z = s->seed * 0x9E3779B97F4A7C15ull + (uint64_t)y * 0xD1B54A32D192ED03ull;
  for (int x = 0; x < w; x++)
    for (int k = 0; k < c; k++) {
      size_t i = (size_t)x * c + k;
      double v = 128 + s->col[i] * ra[k] + s->col[n + i] * rc[k] + s->col[2 * n + i] * rs[k];
      if (s->pattern == GLOW_SYNTH_PHOTO) {
        z += 0x9E3779B97F4A7C15ull;
        uint64_t r = z;
        r = (r ^ (r >> 30)) * 0xBF58476D1CE4E5B9ull;
        r = (r ^ (r >> 27)) * 0x94D049BB133111EBull;
        v += (double)((r >> 40) % 49) - 24;
      }
      row[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5);
    }
}

static int synth_png_body(synth_writer *s) {
  if (setjmp(png_jmpbuf(s->png))) return -1;
  png_init_io(s->png, s->fp);
  png_set_IHDR(s->png, s->info, (png_uint_32)s->w, (png_uint_32)s->h, 8,
               s->c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
               s->layout ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (s->pattern == GLOW_SYNTH_ZERO) { /* runs of zeros: about 1000:1, fast */
    png_set_compression_strategy(s->png, 3 /* Z_RLE */);
    png_set_filter(s->png, 0, PNG_FILTER_NONE);
  } else {
    png_set_compression_level(s->png, 1);
  }
  png_write_info(s->png, s->info);
  int passes = png_set_interlace_handling(s->png);
  for (int p = 0; p < passes; p++)
    for (int y = 0; y < s->h; y++) {
      synth_row(s, y);
      png_write_row(s->png, s->row);
    }
  png_write_end(s->png, s->info);
  return 0;
}

static int synth_jpeg_body(synth_writer *s) {
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
  if (s->layout) jpeg_simple_progression(&s->cinfo);
  jpeg_start_compress(&s->cinfo, TRUE);
  while (s->cinfo.next_scanline < s->cinfo.image_height) {
    synth_row(s, (int)s->cinfo.next_scanline);
    JSAMPROW r = s->row;
    jpeg_write_scanlines(&s->cinfo, &r, 1);
  }
  jpeg_finish_compress(&s->cinfo);
  return 0;
}

int glow_image_synth(const char *path, int jpeg, int h, int w, int c, int pattern, int quality,
                     int layout, uint64_t seed, char *err, size_t errlen) {
  if (h < 1 || w < 1 || (c != 1 && c != 3) || (jpeg && (h > 65500 || w > 65500)) ||
      pattern < GLOW_SYNTH_ZERO || pattern > GLOW_SYNTH_PHOTO || quality < 1 || quality > 100)
    return fail(err, errlen, GLOW_EDATA, "%s: cannot write a synthetic %dx%dx%d image", path, h, w,
                c);
  synth_writer *s = (synth_writer *)calloc(1, sizeof *s);
  if (!s) return fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
  s->h = h;
  s->w = w;
  s->c = c;
  s->pattern = pattern;
  s->quality = quality;
  s->layout = layout;
  s->seed = seed;
  s->row = (uint8_t *)malloc((size_t)w * c);
  int tables = synth_tables(s);
  s->fp = fopen(path, "wb");
  int rc = GLOW_OK;
  png_errmsg em = {{0}};
  if (!s->row || tables) {
    rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
  } else if (!s->fp) {
    rc = fail(err, errlen, GLOW_EDATA, "cannot write %s: %s", path, strerror(errno));
  } else if (jpeg) {
    jpeg_errmgr_init(&s->jerr, &s->cinfo.err);
    if (synth_jpeg_body(s))
      rc = fail(err, errlen, GLOW_EDATA, "cannot write %s: %s", path,
                s->jerr.msg[0] ? s->jerr.msg : "libjpeg error");
    if (s->created) jpeg_destroy_compress(&s->cinfo);
  } else {
    s->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &em, on_error, on_warning);
    if (s->png) s->info = png_create_info_struct(s->png);
    if (!s->png || !s->info)
      rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
    else if (synth_png_body(s))
      rc = fail(err, errlen, GLOW_EDATA, "cannot write %s: %s", path,
                em.msg[0] ? em.msg : "libpng error");
    png_destroy_write_struct(s->png ? &s->png : NULL, s->info ? &s->info : NULL);
  }
  if (s->fp && fclose(s->fp) != 0 && rc == GLOW_OK)
    rc = fail(err, errlen, GLOW_EDATA, "cannot write %s: %s", path, strerror(errno));
  if (rc != GLOW_OK && s->fp) remove(path);
  free(s->row);
  free(s->col);
  free(s);
  return rc;
}

/* ------------------------------------------------------------------ by signature */
int glow_open_failed(const char *path, int e, char *err, size_t errlen) {
  struct stat st;
  char to[256];
  ssize_t n;
  if ((e == ENOENT || e == ELOOP) && lstat(path, &st) == 0 && S_ISLNK(st.st_mode) &&
      (n = readlink(path, to, sizeof to - 1)) >= 0) {
    to[n] = 0;
    if (e == ELOOP)
      return fail(err, errlen, GLOW_EDATA, "%s: a symbolic link in a loop of links (to %s)", path,
                  to);
    return fail(err, errlen, GLOW_EDATA, "%s: a dangling symbolic link (to %s, which does not exist)",
                path, to);
  }
  return fail(err, errlen, GLOW_EDATA, "cannot open %s: %s", path, strerror(e));
}

/* open path and pick the decoder by its first bytes */
static int decode_any(const char *path, const glow_decode_opts *png_o, const glow_decode_opts *jpeg_o,
                      target *t, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) return glow_open_failed(path, errno, err, errlen);
  unsigned char sig[8] = {0};
  size_t got = fread(sig, 1, 8, f);
  int e = ferror(f) ? errno : 0;
  if (e) {
    fclose(f);
    return fail(err, errlen, GLOW_EDATA, "cannot read %s: %s", path, strerror(e));
  }
  if (got == 8 && !png_sig_cmp(sig, 0, 8)) return png_decode(f, path, png_o, t, err, errlen);
  if (got >= 3 && sig[0] == 0xFF && sig[1] == 0xD8 && sig[2] == 0xFF) {
    if (fseek(f, 0, SEEK_SET) != 0) {
      e = errno;
      fclose(f);
      return fail(err, errlen, GLOW_EDATA, "cannot read %s: %s", path, strerror(e));
    }
    return jpeg_decode(f, path, jpeg_o, t, err, errlen);
  }
  fclose(f);
  return fail(err, errlen, GLOW_EDATA, "%s: not a PNG or JPEG file (unknown signature%s)", path,
              got == 0 ? ": empty file" : "");
}

int glow_image_read(const char *path, const uint8_t *bg, uint8_t **pixels, int *h, int *w, int *c,
                    char *err, size_t errlen) {
  *pixels = NULL;
  glow_decode_opts po = whole_opts(bg, INT64_MAX), jo = whole_opts(NULL, JPEG_MAX_PIXELS);
  target t = {0};
  return whole_result(decode_any(path, &po, &jo, &t, err, errlen), &t, pixels, h, w, c);
}

int glow_image_decode(const char *path, const glow_decode_opts *o, int dh, int dw, int dc,
                      uint8_t *dst, uint8_t **pixels, int *h, int *w, int *c, char *err,
                      size_t errlen) {
  if (pixels) *pixels = NULL;
  if (dh < 0 || dw < 0 || (dh == 0) != (dw == 0) || (dc != 0 && dc != 1 && dc != 3) ||
      (dst && (!dh || !dc)) || (!dst && !pixels))
    return fail(err, errlen, GLOW_EDATA, "%s: bad decode target %dx%dx%d", path, dh, dw, dc);
  glow_decode_opts d = *o;
  if (d.max_pixels <= 0) d.max_pixels = GLOW_MAX_PIXELS;
  if (d.max_scans <= 0) d.max_scans = GLOW_JPEG_MAX_SCANS;
  target t = {0};
  t.dh = dh;
  t.dw = dw;
  t.dc = dc;
  t.dst = dst;
  int rc = decode_any(path, &d, &d, &t, err, errlen);
  if (rc != GLOW_OK) return rc;
  if (pixels) *pixels = t.out;
  if (h) *h = t.h;
  if (w) *w = t.w;
  if (c) *c = t.c;
  return GLOW_OK;
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
