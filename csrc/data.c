/*
 * data.c -- datasets: loaders for IDX (Fashion-MNIST), CIFAR-10 binary
 * batches and folders of PNG files, the epoch's shuffle, and the
 * preprocessing of a batch.
 *
 * A dataset holds uint8 images NHWC and int labels in memory. Loaders check
 * everything a file says about itself (magic numbers, dimensions, counts,
 * lengths, label ranges) and report a failure as GLOW_EDATA with a message
 * that names the file; they free what they hold on every path.
 *
 * Preprocessing (docs/FORMAT.md): xq = floor(x / 2^(8 - n_bits));
 * x~ = (xq + u) / 2^n_bits - 0.5, u ~ U[0, 1) per element. Image i's u in an
 * epoch come from a generator seeded by a hash of (seed, epoch, i), so they
 * do not depend on the batch size, the order or where an epoch resumed; the
 * shuffle is a Fisher-Yates permutation seeded by (seed, epoch) alone.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <zlib.h>

#include "glow.h"

#define fail glow_error /* message into err, return code */

void glow_dataset_free(glow_dataset *ds) {
  if (!ds) return;
  free(ds->x);
  free(ds->y);
  if (ds->class_names)
    for (int k = 0; k < ds->classes; k++) free(ds->class_names[k]);
  free(ds->class_names);
  memset(ds, 0, sizeof *ds);
}

/* ------------------------------------------------------------------ IDX */
/* read up to n bytes; returns the count read, or -1 on a stream error */
static int64_t gz_read_all(gzFile f, uint8_t *buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    size_t chunk = n - done > (1u << 30) ? (1u << 30) : n - done;
    int got = gzread(f, buf + done, (unsigned)chunk);
    if (got < 0) return -1;
    if (got == 0) break;
    done += (size_t)got;
  }
  return (int64_t)done;
}

/* zlib's reason for the last error, without the path it prefixes; NULL when none */
static const char *gz_reason(gzFile f, const char *path) {
  int code = Z_OK;
  const char *m = gzerror(f, &code);
  if (code == Z_OK || !m || !*m) return NULL;
  size_t lp = strlen(path);
  if (strncmp(m, path, lp) == 0 && m[lp] == ':' && m[lp + 1] == ' ') m += lp + 2;
  return m;
}

static const char *gz_why(gzFile f, const char *path) {
  const char *m = gz_reason(f, path);
  return m ? m : "read error";
}

static uint32_t be32(const uint8_t *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* open an IDX file and read its header: magic, then ndim big-endian counts */
static int idx_open(const char *path, uint32_t magic, int ndim, uint32_t *dims, gzFile *out,
                    char *err, size_t errlen) {
  errno = 0;
  gzFile f = gzopen(path, "rb");
  if (!f)
    return fail(err, errlen, GLOW_EDATA, "cannot open %s: %s", path,
                errno ? strerror(errno) : "out of memory");
  uint8_t hdr[16];
  size_t want = 4 * (size_t)(ndim + 1);
  int64_t got = gz_read_all(f, hdr, want);
  if (got < 0) {
    int rc = fail(err, errlen, GLOW_EDATA, "%s: corrupt (%s)", path, gz_why(f, path));
    gzclose(f);
    return rc;
  }
  if (got < 4 || be32(hdr) != magic) {
    int rc = got < 4 ? fail(err, errlen, GLOW_EDATA, "%s: truncated: no IDX header", path)
                     : fail(err, errlen, GLOW_EDATA,
                            "%s: bad magic number 0x%08x, expected 0x%08x (IDX, unsigned bytes, "
                            "%d dimension%s)",
                            path, (unsigned)be32(hdr), (unsigned)magic, ndim,
                            ndim > 1 ? "s" : "");
    gzclose(f);
    return rc;
  }
  if ((size_t)got < want) {
    gzclose(f);
    return fail(err, errlen, GLOW_EDATA, "%s: truncated: the header ends after %d bytes", path,
                (int)got);
  }
  for (int d = 0; d < ndim; d++) dims[d] = be32(hdr + 4 * (d + 1));
  *out = f;
  return GLOW_OK;
}

/* Read exactly n bytes into a new buffer (*out, the caller frees it) and check
   that nothing follows. The buffer grows with the data read, from 1 MiB by
   doubling, so a header that claims more than the file holds costs at most
   about twice the memory of the data really there (a realloc may copy). */
static int idx_body(gzFile f, const char *path, uint8_t **out, size_t n, const char *what,
                    char *err, size_t errlen) {
  size_t cap = n < ((size_t)1 << 20) ? n : ((size_t)1 << 20), done = 0;
  uint8_t *buf = (uint8_t *)malloc(cap);
  *out = NULL;
  if (!buf) return fail(err, errlen, GLOW_ENOMEM, "%s: out of memory for %zu bytes", path, cap);
  for (;;) {
    int64_t got = gz_read_all(f, buf + done, cap - done);
    if (got < 0) {
      free(buf);
      return fail(err, errlen, GLOW_EDATA, "%s: corrupt (%s)", path, gz_why(f, path));
    }
    done += (size_t)got;
    if (done < cap || done == n) break; /* end of the stream, or all there */
    size_t next = cap > n / 2 ? n : 2 * cap;
    uint8_t *grown = (uint8_t *)realloc(buf, next);
    if (!grown) {
      free(buf);
      return fail(err, errlen, GLOW_ENOMEM, "%s: out of memory for %zu bytes", path, next);
    }
    buf = grown;
    cap = next;
  }
  if (done < n) {
    const char *why = gz_reason(f, path);
    free(buf);
    return fail(err, errlen, GLOW_EDATA, "%s: truncated: expected %zu bytes of %s, got %zu%s%s%s",
                path, n, what, done, why ? " (" : "", why ? why : "", why ? ")" : "");
  }
  uint8_t extra[64];
  int64_t got = gz_read_all(f, extra, sizeof extra);
  if (got != 0) {
    free(buf);
    if (got < 0)
      return fail(err, errlen, GLOW_EDATA, "%s: corrupt (%s)", path, gz_why(f, path));
    return fail(err, errlen, GLOW_EDATA, "%s: longer than its header says (%zu bytes of %s)",
                path, n, what);
  }
  *out = buf;
  return GLOW_OK;
}

int glow_load_idx(const char *images_path, const char *labels_path, glow_dataset *ds, char *err,
                  size_t errlen) {
  memset(ds, 0, sizeof *ds);
  uint32_t idim[3] = {0, 0, 0}, ldim[1] = {0};
  gzFile fi = NULL, fl = NULL;
  uint8_t *lab = NULL;
  int rc = idx_open(images_path, 0x00000803u, 3, idim, &fi, err, errlen);
  if (rc) return rc;
  rc = idx_open(labels_path, 0x00000801u, 1, ldim, &fl, err, errlen);
  if (rc) goto done;
  if (idim[0] == 0 || idim[1] == 0 || idim[2] == 0 || idim[1] > 65535 || idim[2] > 65535) {
    rc = fail(err, errlen, GLOW_EDATA, "%s: bad dimensions %u x %u x %u", images_path,
              (unsigned)idim[0], (unsigned)idim[1], (unsigned)idim[2]);
    goto done;
  }
  if (ldim[0] != idim[0]) {
    rc = fail(err, errlen, GLOW_EDATA, "%s holds %u labels but %s holds %u images", labels_path,
              (unsigned)ldim[0], images_path, (unsigned)idim[0]);
    goto done;
  }
  ds->n = idim[0];
  ds->h = (int)idim[1];
  ds->w = (int)idim[2];
  ds->c = 1;
  /* n * h * w < 2^64 since n < 2^32 and h, w < 2^16; the memory follows
     the data that is really there */
  rc = idx_body(fi, images_path, &ds->x, (size_t)ds->n * ds->h * ds->w, "pixels", err, errlen);
  if (!rc) rc = idx_body(fl, labels_path, &lab, (size_t)ds->n, "labels", err, errlen);
  if (!rc) {
    ds->y = (int *)malloc(sizeof(int) * (size_t)ds->n);
    if (!ds->y) {
      rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory for %lld labels", labels_path,
                (long long)ds->n);
      goto done;
    }
    int maxl = 0;
    for (int64_t i = 0; i < ds->n; i++) {
      ds->y[i] = lab[i];
      if (lab[i] > maxl) maxl = lab[i];
    }
    ds->classes = maxl + 1;
  }
done:
  free(lab);
  if (fi) gzclose(fi);
  if (fl) gzclose(fl);
  if (rc) glow_dataset_free(ds);
  return rc;
}

/* ------------------------------------------------------------------ CIFAR-10 */
#define CIFAR_REC 3073

int glow_load_cifar10(const char *const *paths, int npaths, glow_dataset *ds, char *err,
                      size_t errlen) {
  memset(ds, 0, sizeof *ds);
  if (npaths < 1) return fail(err, errlen, GLOW_EDATA, "cifar10: no files");
  int64_t total = 0;
  for (int k = 0; k < npaths; k++) {
    struct stat st;
    if (stat(paths[k], &st) != 0)
      return fail(err, errlen, GLOW_EDATA, "cannot open %s: %s", paths[k], strerror(errno));
    if (!S_ISREG(st.st_mode))
      return fail(err, errlen, GLOW_EDATA, "%s: not a regular file", paths[k]);
    if (st.st_size == 0 || st.st_size % CIFAR_REC)
      return fail(err, errlen, GLOW_EDATA,
                  "%s: %lld bytes is not a whole number of %d-byte records (truncated?)",
                  paths[k], (long long)st.st_size, CIFAR_REC);
    total += st.st_size / CIFAR_REC;
  }
  ds->n = total;
  ds->h = ds->w = 32;
  ds->c = 3;
  ds->classes = 10;
  ds->x = (uint8_t *)malloc((size_t)total * 3072);
  ds->y = (int *)malloc(sizeof(int) * (size_t)total);
  uint8_t *rec = (uint8_t *)malloc(CIFAR_REC);
  int rc = GLOW_OK;
  if (!ds->x || !ds->y || !rec) {
    rc = fail(err, errlen, GLOW_ENOMEM, "cifar10: out of memory for %lld images",
              (long long)total);
    goto done;
  }
  int64_t i = 0;
  for (int k = 0; k < npaths && !rc; k++) {
    FILE *f = fopen(paths[k], "rb");
    if (!f) {
      rc = fail(err, errlen, GLOW_EDATA, "cannot open %s: %s", paths[k], strerror(errno));
      break;
    }
    int64_t r = 0;
    size_t got;
    while (!rc && (got = fread(rec, 1, CIFAR_REC, f)) > 0) {
      if (got < CIFAR_REC || i >= total) {
        rc = fail(err, errlen, GLOW_EDATA, "%s: changed while being read", paths[k]);
        break;
      }
      r++;
      if (rec[0] > 9) {
        rc = fail(err, errlen, GLOW_EDATA, "%s: record %lld has label %d, expected 0..9",
                  paths[k], (long long)r, rec[0]);
        break;
      }
      ds->y[i] = rec[0];
      uint8_t *dst = ds->x + (size_t)i * 3072;
      for (int p = 0; p < 1024; p++)
        for (int ch = 0; ch < 3; ch++) dst[p * 3 + ch] = rec[1 + ch * 1024 + p];
      i++;
    }
    if (!rc && ferror(f)) rc = fail(err, errlen, GLOW_EDATA, "%s: read error", paths[k]);
    fclose(f);
  }
  if (!rc && i != total) rc = fail(err, errlen, GLOW_EDATA, "cifar10: files changed while read");
done:
  free(rec);
  if (rc) glow_dataset_free(ds);
  return rc;
}

/* ------------------------------------------------------------------ PNG folders */
typedef struct {
  char **v;
  size_t n, cap;
} strlist;

static void sl_free(strlist *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof *l);
}

static int sl_push(strlist *l, const char *s) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 16;
    char **v = (char **)realloc(l->v, sizeof(char *) * cap);
    if (!v) return -1;
    l->v = v;
    l->cap = cap;
  }
  char *d = (char *)malloc(strlen(s) + 1);
  if (!d) return -1;
  strcpy(d, s);
  l->v[l->n++] = d;
  return 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *join(const char *dir, const char *name) {
  size_t ld = strlen(dir), ln = strlen(name);
  int slash = ld > 0 && dir[ld - 1] != '/';
  char *p = (char *)malloc(ld + ln + 2);
  if (!p) return NULL;
  memcpy(p, dir, ld);
  if (slash) p[ld] = '/';
  memcpy(p + ld + slash, name, ln + 1);
  return p;
}

static int is_png_name(const char *name) {
  size_t n = strlen(name);
  return n > 4 && strcasecmp(name + n - 4, ".png") == 0;
}

/* names (not paths) of the PNG files and of the subfolders in dir, sorted;
 * hidden entries are skipped */
static int list_dir(const char *dir, strlist *files, strlist *dirs, char *err, size_t errlen) {
  DIR *d = opendir(dir);
  if (!d) return fail(err, errlen, GLOW_EDATA, "cannot open directory %s: %s", dir, strerror(errno));
  int rc = GLOW_OK;
  struct dirent *e;
  while (!rc && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char *p = join(dir, e->d_name);
    struct stat st;
    if (!p) {
      rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", dir);
      break;
    }
    if (stat(p, &st) == 0) {
      if (S_ISDIR(st.st_mode)) {
        if (dirs && sl_push(dirs, e->d_name)) rc = GLOW_ENOMEM;
      } else if (S_ISREG(st.st_mode) && is_png_name(e->d_name)) {
        if (sl_push(files, e->d_name)) rc = GLOW_ENOMEM;
      }
    }
    free(p);
    if (rc == GLOW_ENOMEM) fail(err, errlen, rc, "%s: out of memory", dir);
  }
  closedir(d);
  if (rc) return rc;
  /* qsort's array must not be NULL, even for 0 elements (an empty folder) */
  if (files->n > 1) qsort(files->v, files->n, sizeof(char *), cmp_str);
  if (dirs && dirs->n > 1) qsort(dirs->v, dirs->n, sizeof(char *), cmp_str);
  return GLOW_OK;
}

static const char *channels_name(int c) { return c == 1 ? "grayscale" : "color"; }

int glow_load_images(const char *dir, int size, glow_dataset *ds, char *err, size_t errlen) {
  memset(ds, 0, sizeof *ds);
  strlist files = {0}, dirs = {0}, paths = {0};
  int *labels = NULL;
  uint8_t *pix = NULL;
  char *first = NULL;
  int rc = list_dir(dir, &files, &dirs, err, errlen);
  if (rc) goto done;
  if (files.n && dirs.n) {
    rc = fail(err, errlen, GLOW_EDATA,
              "%s: holds both PNG files and subfolders; expected PNG files, or one subfolder of "
              "PNG files per class",
              dir);
    goto done;
  }
  if (!files.n && !dirs.n) {
    rc = fail(err, errlen, GLOW_EDATA, "%s: no PNG files and no class subfolders", dir);
    goto done;
  }
  /* the full list of (path, label) */
  size_t cap = 0;
  if (files.n) {
    for (size_t i = 0; i < files.n && !rc; i++) {
      char *p = join(dir, files.v[i]);
      if (!p || sl_push(&paths, p)) rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", dir);
      free(p);
    }
  } else {
    for (size_t k = 0; k < dirs.n && !rc; k++) {
      char *sub = join(dir, dirs.v[k]);
      strlist cf = {0};
      if (!sub) {
        rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", dir);
        break;
      }
      rc = list_dir(sub, &cf, NULL, err, errlen);
      if (!rc && !cf.n)
        rc = fail(err, errlen, GLOW_EDATA, "class folder %s holds no PNG files", sub);
      if (!rc && paths.n + cf.n > cap) {
        size_t nc = 2 * (paths.n + cf.n);
        int *nl = (int *)realloc(labels, sizeof(int) * nc);
        if (!nl)
          rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", dir);
        else {
          labels = nl;
          cap = nc;
        }
      }
      for (size_t i = 0; i < cf.n && !rc; i++) {
        char *p = join(sub, cf.v[i]);
        if (!p || sl_push(&paths, p))
          rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", dir);
        else
          labels[paths.n - 1] = (int)k;
        free(p);
      }
      sl_free(&cf);
      free(sub);
    }
  }
  if (rc) goto done;
  int64_t n = (int64_t)paths.n;
  size_t per = 0;
  for (int64_t i = 0; i < n; i++) {
    int h, w, c;
    rc = glow_png_read(paths.v[i], &pix, &h, &w, &c, err, errlen);
    if (rc) goto done;
    if (i == 0) {
      if (size > 0 && (h != size || w != size)) {
        rc = fail(err, errlen, GLOW_EDATA, "%s: image is %dx%d (h x w), expected %dx%d",
                  paths.v[i], h, w, size, size);
        goto done;
      }
      ds->h = h;
      ds->w = w;
      ds->c = c;
      per = (size_t)h * w * c;
      ds->x = (uint8_t *)malloc(per * (size_t)n);
      if (!ds->x) {
        rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory for %lld images", dir,
                  (long long)n);
        goto done;
      }
      first = paths.v[0];
    } else if (h != ds->h || w != ds->w) {
      if (size > 0)
        rc = fail(err, errlen, GLOW_EDATA, "%s: image is %dx%d (h x w), expected %dx%d",
                  paths.v[i], h, w, size, size);
      else
        rc = fail(err, errlen, GLOW_EDATA,
                  "%s: image is %dx%d (h x w), expected %dx%d like the first image %s",
                  paths.v[i], h, w, ds->h, ds->w, first);
      goto done;
    } else if (c != ds->c) {
      rc = fail(err, errlen, GLOW_EDATA,
                "%s: %s image, but the first image %s is %s (all images must have the same "
                "channels)",
                paths.v[i], channels_name(c), first, channels_name(ds->c));
      goto done;
    }
    memcpy(ds->x + per * (size_t)i, pix, per);
    free(pix);
    pix = NULL;
  }
  ds->n = n;
  if (dirs.n) {
    ds->y = labels;
    labels = NULL;
    ds->classes = (int)dirs.n;
    ds->class_names = dirs.v; /* hand over the names */
    dirs.v = NULL;
    dirs.n = dirs.cap = 0;
  }
done:
  free(pix);
  free(labels);
  sl_free(&files);
  sl_free(&dirs);
  sl_free(&paths);
  if (rc) glow_dataset_free(ds);
  return rc;
}

/* ------------------------------------------------------------------ shuffle and noise */
static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t glow_data_hash(uint64_t seed, uint64_t epoch, uint64_t index) {
  uint64_t h = mix64(seed + 0x9E3779B97F4A7C15ull);
  h = mix64(h ^ (epoch + 0x632BE59BD9B4E019ull));
  return mix64(h ^ (index + 0xD6E8FEB86659FD93ull));
}

void glow_permutation(int64_t *perm, int64_t n, uint64_t seed, uint64_t epoch) {
  for (int64_t i = 0; i < n; i++) perm[i] = i;
  glow_rng r;
  glow_rng_seed(&r, glow_data_hash(seed, epoch, 0));
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)(glow_rng_uniform(&r) * (double)(i + 1));
    if (j > i) j = i;
    int64_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

void glow_preprocess(const uint8_t *x, float *out, size_t d, int n_bits, glow_rng *r) {
  int shift = 8 - n_bits;
  float inv = 1.0f / (float)(1 << n_bits);
  for (size_t k = 0; k < d; k++) {
    float u = 0.5f;
    if (r) {
      u = (float)glow_rng_uniform(r);
      if (u >= 1.0f) u = 0x1.fffffep-1f;
    }
    out[k] = ((float)(x[k] >> shift) + u) * inv - 0.5f;
  }
}

void glow_dataset_batch(const glow_dataset *ds, const int64_t *idx, int64_t b, int n_bits,
                        uint64_t seed, uint64_t epoch, int noise, float *x, int *y) {
  size_t d = (size_t)ds->h * ds->w * ds->c;
#pragma omp parallel for if ((size_t)b * d > 262144)
  for (int64_t k = 0; k < b; k++) {
    glow_rng r;
    glow_rng_seed(&r, glow_data_hash(seed, epoch, (uint64_t)idx[k] + 1));
    glow_preprocess(ds->x + (size_t)idx[k] * d, x + (size_t)k * d, d, n_bits, noise ? &r : NULL);
  }
  if (y && ds->y)
    for (int64_t k = 0; k < b; k++) y[k] = ds->y[idx[k]];
}
