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
#define _GNU_SOURCE /* flock, process_vm_readv */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "glow.h"

#define fail glow_error /* message into err, return code */

void glow_dataset_free(glow_dataset *ds) {
  if (!ds) return;
  if (ds->map) munmap(ds->map, (size_t)ds->pack_len);
  if (ds->pack) close(ds->fd);
  free(ds->pack);
  free(ds->x);
  free(ds->y);
  if (ds->class_names)
    for (int k = 0; k < ds->classes; k++) free(ds->class_names[k]);
  free(ds->class_names);
  if (ds->paths)
    for (int64_t i = 0; i < ds->n; i++) free(ds->paths[i]);
  free(ds->paths);
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

/* ------------------------------------------------------------------ image folders */
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
  char *d = strdup(s);
  if (!d) return -1;
  l->v[l->n++] = d;
  return 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void sl_sort(strlist *l) {
  /* qsort's array must not be NULL, even for 0 elements (an empty folder) */
  if (l->n > 1) qsort(l->v, l->n, sizeof(char *), cmp_str);
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

void glow_skips_free(glow_skips *s) {
  if (!s) return;
  for (int64_t i = 0; i < s->n; i++) {
    free(s->path[i]);
    free(s->reason[i]);
  }
  free(s->path);
  free(s->reason);
  free(s->kind);
  memset(s, 0, sizeof *s);
}

/* record a file left out (kind GLOW_SKIP_*); the reason loses a leading
   "path: "; sk NULL records nothing */
static int skip_push(glow_skips *s, const char *path, const char *msg, int kind) {
  if (!s) return GLOW_OK;
  if (s->n == s->cap) {
    int64_t cap = s->cap ? 2 * s->cap : 16;
    char **p = (char **)realloc(s->path, sizeof(char *) * (size_t)cap);
    if (!p) return GLOW_ENOMEM;
    s->path = p;
    char **r = (char **)realloc(s->reason, sizeof(char *) * (size_t)cap);
    if (!r) return GLOW_ENOMEM;
    s->reason = r;
    int *k = (int *)realloc(s->kind, sizeof(int) * (size_t)cap);
    if (!k) return GLOW_ENOMEM;
    s->kind = k;
    s->cap = cap;
  }
  size_t lp = strlen(path);
  if (!msg) msg = "unreadable";
  if (strncmp(msg, path, lp) == 0 && msg[lp] == ':' && msg[lp + 1] == ' ') msg += lp + 2;
  char *a = strdup(path), *b = strdup(msg);
  if (!a || !b) {
    free(a);
    free(b);
    return GLOW_ENOMEM;
  }
  s->path[s->n] = a;
  s->kind[s->n] = kind;
  s->reason[s->n++] = b;
  return GLOW_OK;
}

static int has_suffix(const char *name, const char *suffix) {
  size_t n = strlen(name), m = strlen(suffix);
  return n > m && strcasecmp(name + n - m, suffix) == 0;
}

static int is_image_name(const char *name) {
  return has_suffix(name, ".png") || has_suffix(name, ".jpg") || has_suffix(name, ".jpeg");
}

/* the extensions of image formats glow does not read: such files are
   counted and named (GLOW_SKIP_FORMAT), never opened. .jfif, .jpe and .apng
   hold JPEG and PNG data, but under names glow does not take. */
static const char *const OTHER_FORMATS[] = {
    ".gif", ".webp", ".tif", ".tiff", ".bmp", ".dib", ".svg", ".svgz", ".ico", ".icns",
    ".heic", ".heif", ".avif", ".jxl", ".jp2", ".j2k", ".jpx", ".psd", ".xcf", ".tga",
    ".ppm", ".pgm", ".pbm", ".pnm", ".pam", ".pcx", ".exr", ".hdr", ".dds", ".qoi",
    ".dng", ".cr2", ".nef", ".arw", ".eps", ".jfif", ".jpe", ".apng"};

/* the extension of another image format that name ends with, or NULL */
static const char *other_format(const char *name) {
  for (size_t k = 0; k < sizeof OTHER_FORMATS / sizeof OTHER_FORMATS[0]; k++)
    if (has_suffix(name, OTHER_FORMATS[k])) return OTHER_FORMATS[k];
  return NULL;
}

#define NO_IMAGES "no image files (.png, .jpg, .jpeg)"

/* names (not paths) of the image files and of the subfolders in dir, and
 * (other, when not NULL) of the files of other image formats; hidden
 * entries are skipped, symbolic links followed. broken: the names that lead
 * nowhere (a dangling symbolic link, a loop of links, an image file's name
 * that cannot be looked up), each to be reported as a bad file. */
static int list_dir(const char *dir, strlist *files, strlist *dirs, strlist *other,
                    strlist *broken, char *err, size_t errlen) {
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
        if (sl_push(dirs, e->d_name)) rc = GLOW_ENOMEM;
      } else if (S_ISREG(st.st_mode) && is_image_name(e->d_name)) {
        if (sl_push(files, e->d_name)) rc = GLOW_ENOMEM;
      } else if (S_ISREG(st.st_mode) && other && other_format(e->d_name)) {
        if (sl_push(other, e->d_name)) rc = GLOW_ENOMEM;
      }
    } else if (is_image_name(e->d_name) || (lstat(p, &st) == 0 && S_ISLNK(st.st_mode))) {
      if (sl_push(broken, e->d_name)) rc = GLOW_ENOMEM;
    }
    free(p);
    if (rc == GLOW_ENOMEM) fail(err, errlen, rc, "%s: out of memory", dir);
  }
  closedir(d);
  if (rc) return rc;
  sl_sort(files);
  sl_sort(dirs);
  sl_sort(broken);
  if (other) sl_sort(other);
  return GLOW_OK;
}

/* record dir's files of other formats (names) in sk */
static int push_other(const char *dir, const strlist *other, glow_skips *sk, char *err,
                      size_t errlen) {
  for (size_t i = 0; i < other->n; i++) {
    char *p = join(dir, other->v[i]);
    int bad = !p || skip_push(sk, p, other_format(other->v[i]), GLOW_SKIP_FORMAT);
    free(p);
    if (bad) return fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", dir);
  }
  return GLOW_OK;
}

/* the folders a walk has entered, by (device, inode): a link back to one of
   them (a loop) or a second link to one is not walked again */
typedef struct {
  dev_t *dev;
  ino_t *ino;
  size_t n, cap;
} dir_set;

static void ds_set_free(dir_set *s) {
  free(s->dev);
  free(s->ino);
  memset(s, 0, sizeof *s);
}

/* 1: newly added, 0: seen before, -1: out of memory */
static int ds_set_add(dir_set *s, dev_t dev, ino_t ino) {
  for (size_t i = 0; i < s->n; i++)
    if (s->dev[i] == dev && s->ino[i] == ino) return 0;
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 16;
    dev_t *d = (dev_t *)realloc(s->dev, sizeof(dev_t) * cap);
    if (!d) return -1;
    s->dev = d;
    ino_t *i = (ino_t *)realloc(s->ino, sizeof(ino_t) * cap);
    if (!i) return -1;
    s->ino = i;
    s->cap = cap;
  }
  s->dev[s->n] = dev;
  s->ino[s->n++] = ino;
  return 1;
}

/* the paths of the image files under dir, recursively, appended to out
   with the names there that lead nowhere (whose reading then fails, so each
   is reported as a bad file); the files of other image formats recorded in
   sk */
static int walk(const char *dir, strlist *out, dir_set *seen, int depth, glow_skips *sk, char *err,
                size_t errlen) {
  struct stat st;
  if (stat(dir, &st) != 0)
    return fail(err, errlen, GLOW_EDATA, "cannot open directory %s: %s", dir, strerror(errno));
  int added = ds_set_add(seen, st.st_dev, st.st_ino);
  if (added < 0) return fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", dir);
  if (added == 0) return GLOW_OK;
  if (depth > 256) return fail(err, errlen, GLOW_EDATA, "%s: folders nested too deep", dir);
  strlist files = {0}, dirs = {0}, other = {0}, broken = {0};
  int rc = list_dir(dir, &files, &dirs, &other, &broken, err, errlen);
  if (!rc) rc = push_other(dir, &other, sk, err, errlen);
  for (size_t i = 0; i < files.n + broken.n && !rc; i++) {
    char *p = join(dir, i < files.n ? files.v[i] : broken.v[i - files.n]);
    if (!p || sl_push(out, p)) rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", dir);
    free(p);
  }
  for (size_t i = 0; i < dirs.n && !rc; i++) {
    char *p = join(dir, dirs.v[i]);
    if (!p)
      rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", dir);
    else
      rc = walk(p, out, seen, depth + 1, sk, err, errlen);
    free(p);
  }
  sl_free(&files);
  sl_free(&dirs);
  sl_free(&other);
  sl_free(&broken);
  return rc;
}

/* one name of a file: its device and inode, whether the name is itself a
   symbolic link, its index */
typedef struct {
  dev_t dev;
  ino_t ino;
  int link;
  size_t i;
} file_id;

static int cmp_id(const void *a, const void *b) {
  const file_id *x = (const file_id *)a, *y = (const file_id *)b;
  if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
  if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
  if (x->link != y->link) return x->link - y->link;
  return x->i < y->i ? -1 : x->i > y->i;
}

/* Each real file (device, inode) once: of the names that reach one file (a
   symbolic link to a file already listed, a hard link, a folder linked into
   two classes), the first that is not itself a symbolic link is kept, else
   the first; the others are recorded in sk (GLOW_SKIP_DUPLICATE, the reason
   the kept name) and removed from paths and labels (when not NULL), which
   keep their order. A name that cannot be stat'ed stays (its read fails). */
static int dedupe(strlist *paths, int *labels, glow_skips *sk, char *err, size_t errlen) {
  size_t n = paths->n, m = 0;
  if (n < 2) return GLOW_OK;
  file_id *id = (file_id *)malloc(sizeof(file_id) * n);
  size_t *keep = (size_t *)malloc(sizeof(size_t) * n); /* the name kept for name i's file */
  if (!id || !keep) {
    free(id);
    free(keep);
    return fail(err, errlen, GLOW_ENOMEM, "out of memory for %zu file names", n);
  }
  for (size_t i = 0; i < n; i++) {
    struct stat st, lst;
    keep[i] = i;
    if (stat(paths->v[i], &st) != 0) continue;
    id[m].dev = st.st_dev;
    id[m].ino = st.st_ino;
    id[m].link = lstat(paths->v[i], &lst) == 0 && S_ISLNK(lst.st_mode);
    id[m++].i = i;
  }
  if (m > 1) qsort(id, m, sizeof(file_id), cmp_id);
  for (size_t a = 0, b; a < m; a = b)
    for (b = a + 1; b < m && id[b].dev == id[a].dev && id[b].ino == id[a].ino; b++)
      keep[id[b].i] = id[a].i;
  int rc = GLOW_OK;
  for (size_t i = 0; i < n && !rc; i++)
    if (keep[i] != i && skip_push(sk, paths->v[i], paths->v[keep[i]], GLOW_SKIP_DUPLICATE))
      rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", paths->v[i]);
  size_t k = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    if (keep[i] != i) {
      free(paths->v[i]);
      continue;
    }
    paths->v[k] = paths->v[i];
    if (labels) labels[k] = labels[i];
    k++;
  }
  if (!rc) paths->n = k;
  free(id);
  free(keep);
  return rc;
}

/* the image files of a folder: paths sorted by path; with class subfolders,
   class by class (classes sorted by name), labels[i] the class of paths[i];
   each real file once (dedupe). The files of other formats and the second
   names of a file are recorded in sk; so are, with class subfolders, the
   top-level names that lead nowhere (counted in sk->total; with strict,
   the first is the error), which belong to no class. */
static int collect(const char *dir, strlist *paths, int **labels, strlist *classes, int strict,
                   glow_skips *sk, char *err, size_t errlen) {
  strlist files = {0}, dirs = {0}, other = {0}, broken = {0};
  dir_set seen = {0};
  *labels = NULL;
  int rc = list_dir(dir, &files, &dirs, &other, &broken, err, errlen);
  if (rc) goto done;
  if (dirs.n && !files.n) { /* one class per top-level subfolder */
    rc = push_other(dir, &other, sk, err, errlen); /* walk lists the top level itself otherwise */
    for (size_t i = 0; i < broken.n && !rc; i++) {
      char *p = join(dir, broken.v[i]), e[512];
      struct stat st;
      if (!p) {
        rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", dir);
        break;
      }
      glow_open_failed(p, stat(p, &st) == 0 ? ENOENT : errno, e, sizeof e);
      if (strict)
        rc = fail(err, errlen, GLOW_EDATA, "%s", e);
      else if (skip_push(sk, p, e, GLOW_SKIP_CORRUPT))
        rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", dir);
      else if (sk)
        sk->total++;
      free(p);
    }
    for (size_t k = 0; k < dirs.n && !rc; k++) {
      char *sub = join(dir, dirs.v[k]);
      strlist cf = {0};
      ds_set_free(&seen);
      if (!sub) {
        rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", dir);
        break;
      }
      rc = walk(sub, &cf, &seen, 1, sk, err, errlen);
      if (!rc && !cf.n) rc = fail(err, errlen, GLOW_EDATA, "class folder %s holds " NO_IMAGES, sub);
      sl_sort(&cf);
      if (!rc) {
        int *nl = (int *)realloc(*labels, sizeof(int) * (paths->n + cf.n));
        if (!nl)
          rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", dir);
        else
          *labels = nl;
      }
      for (size_t i = 0; i < cf.n && !rc; i++) {
        if (sl_push(paths, cf.v[i]))
          rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", dir);
        else
          (*labels)[paths->n - 1] = (int)k;
      }
      sl_free(&cf);
      free(sub);
    }
    if (!rc) {
      *classes = dirs; /* hand over the names */
      memset(&dirs, 0, sizeof dirs);
    }
  } else {
    rc = walk(dir, paths, &seen, 0, sk, err, errlen);
    sl_sort(paths);
    if (!rc && !paths->n && sk && sk->n)
      rc = fail(err, errlen, GLOW_EDATA,
                "%s: " NO_IMAGES ", only %lld file%s of other formats (first %s)", dir,
                (long long)sk->n, sk->n == 1 ? "" : "s", sk->path[0]);
    else if (!rc && !paths->n)
      rc = fail(err, errlen, GLOW_EDATA, "%s: " NO_IMAGES, dir);
  }
  if (!rc) rc = dedupe(paths, *labels, sk, err, errlen);
  if (!rc && *labels) { /* a class whose every file belongs to another class */
    size_t k = 0;
    for (size_t i = 0; i < paths->n && k < classes->n; i++)
      if ((*labels)[i] == (int)k) k++;
    if (k < classes->n)
      rc = fail(err, errlen, GLOW_EDATA,
                "class folder %s/%s holds no image of its own: each of its files is another "
                "name (a link) of a file in another class",
                dir, classes->v[k]);
  }
done:
  sl_free(&files);
  sl_free(&dirs);
  sl_free(&other);
  sl_free(&broken);
  ds_set_free(&seen);
  if (rc) {
    free(*labels);
    *labels = NULL;
    sl_free(paths);
    sl_free(classes);
  }
  return rc;
}

/* pix {ph, pw, pc} -> dst {h, w, c}: to gray before resizing, to RGB after */
static int convert_fit(const uint8_t *pix, int ph, int pw, int pc, int h, int w, int c,
                       uint8_t *dst) {
  if (c == pc) return glow_fit(pix, ph, pw, pc, dst, h, w);
  size_t n = c < pc ? (size_t)ph * pw : (size_t)h * w;
  uint8_t *g = (uint8_t *)malloc(n);
  if (!g) return GLOW_ENOMEM;
  int rc;
  if (c < pc) {
    glow_convert_channels(pix, pc, g, c, n);
    rc = glow_fit(g, ph, pw, c, dst, h, w);
  } else {
    rc = glow_fit(pix, ph, pw, pc, g, h, w);
    if (!rc) glow_convert_channels(g, pc, dst, c, n);
  }
  free(g);
  return rc;
}

/* the decoding options of a folder's files */
static glow_decode_opts decode_opts(const glow_image_opts *o, glow_decode_gate *gate) {
  glow_decode_opts d;
  memset(&d, 0, sizeof d);
  d.bg = o->bg;
  d.max_pixels = o->max_pixels > 0 ? o->max_pixels : GLOW_MAX_PIXELS;
  d.limit_name = "max_pixels";
  d.gate = gate;
  return d;
}

/* The shared start of loading and packing: the file list, and the size and
   channels (the first readable image's where o leaves them 0; that image's
   pixels are kept in *first, its index in *i0, the files before it that
   failed recorded in st/msg, or the error returned when strict). */
typedef struct {
  strlist paths, classes;
  int *labels;
  int h, w, c;
  int64_t i0;
  uint8_t *first;
  int fh, fw, fc;
  int *st;    /* {n}: each file's result */
  char **msg; /* {n}: its message when it failed */
} folder;

static void folder_free(folder *f) {
  for (size_t i = 0; f->msg && i < f->paths.n; i++) free(f->msg[i]);
  free(f->msg);
  free(f->st);
  free(f->first);
  free(f->labels);
  sl_free(&f->paths);
  sl_free(&f->classes);
  memset(f, 0, sizeof *f);
}

static int folder_open(const char *dir, const glow_image_opts *o, folder *f, glow_skips *sk,
                       char *err, size_t errlen) {
  memset(f, 0, sizeof *f);
  if ((o->c != 0 && o->c != 1 && o->c != 3) || o->h < 0 || o->w < 0 || (o->h == 0) != (o->w == 0))
    return fail(err, errlen, GLOW_EDATA, "%s: bad image options %dx%dx%d", dir, o->h, o->w, o->c);
  int rc = collect(dir, &f->paths, &f->labels, &f->classes, o->strict, sk, err, errlen);
  if (rc) return rc;
  size_t n = f->paths.n;
  f->st = (int *)calloc(n, sizeof(int));
  f->msg = (char **)calloc(n, sizeof(char *));
  if (!f->st || !f->msg) {
    rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory for %zu files", dir, n);
    goto done;
  }
  f->h = o->h;
  f->w = o->w;
  f->c = o->c;
  f->i0 = -1;
  if (!f->h || !f->c) {
    for (size_t i = 0; i < n; i++) {
      char e[512];
      /* at the size asked for (or its own), in its own channels */
      glow_decode_opts d = decode_opts(o, NULL);
      int r = glow_image_decode(f->paths.v[i], &d, f->h, f->w, 0, NULL, &f->first, &f->fh, &f->fw,
                                &f->fc, e, sizeof e);
      if (r == GLOW_OK) {
        f->i0 = (int64_t)i;
        break;
      }
      if (o->strict) {
        rc = fail(err, errlen, r, "%s", e);
        goto done;
      }
      f->st[i] = r;
      f->msg[i] = strdup(e);
    }
    if (f->i0 < 0) {
      rc = fail(err, errlen, GLOW_EDATA, "%s: none of its %zu image files could be read (%s)", dir,
                n, f->msg[n - 1] ? f->msg[n - 1] : "unreadable");
      goto done;
    }
    if (!f->h) {
      f->h = f->fh;
      f->w = f->fw;
    }
    if (!f->c) f->c = f->fc;
  }
  if ((int64_t)f->h * f->w > (int64_t)1 << 28)
    rc = fail(err, errlen, GLOW_EDATA, "%s: images of %dx%d are too large", dir, f->h, f->w);
done:
  if (rc) folder_free(f);
  return rc;
}

/* file i's outcome st (with message m, or NULL) against strict: GLOW_OK to
   skip it (recorded in sk), or the error. A file whose memory could not be
   had (GLOW_ENOMEM) is skipped as a bad file is: the next may be smaller. */
static int folder_failed(const char *path, int st, const char *m, int strict, glow_skips *sk,
                         char *err, size_t errlen) {
  if (strict) return fail(err, errlen, st, "%s", m ? m : "out of memory");
  if (skip_push(sk, path, m, GLOW_SKIP_CORRUPT))
    return fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
  return GLOW_OK;
}

int glow_load_images(const char *dir, const glow_image_opts *o, glow_dataset *ds, glow_skips *sk,
                     char *err, size_t errlen) {
  memset(ds, 0, sizeof *ds);
  glow_skips local;
  if (!sk) sk = &local;
  memset(sk, 0, sizeof *sk);
  folder f;
  int rc = folder_open(dir, o, &f, sk, err, errlen);
  if (rc) {
    glow_skips_free(sk);
    return rc;
  }
  int64_t n = (int64_t)f.paths.n;
  sk->total += n; /* collect counted the names that belong to no class */
  int h = f.h, w = f.w, c = f.c;
  size_t per = (size_t)h * w * c;
  if (per && (size_t)n > SIZE_MAX / per) {
    rc = fail(err, errlen, GLOW_ENOMEM, "%s: %lld images of %zu bytes are too many", dir,
              (long long)n, per);
    goto done;
  }
  ds->x = (uint8_t *)malloc(per * (size_t)n);
  if (!ds->x) {
    rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory for %lld images of %dx%dx%d", dir,
              (long long)n, h, w, c);
    goto done;
  }
  int64_t start = 0;
  if (f.first) {
    f.st[f.i0] = convert_fit(f.first, f.fh, f.fw, f.fc, h, w, c, ds->x + per * (size_t)f.i0);
    if (f.st[f.i0]) f.msg[f.i0] = strdup("out of memory");
    start = f.i0 + 1;
  }
  /* decode in parallel, each file into its own slot; the gate bounds the
     working memory of the decodes running at once (not threads x the
     largest image) */
  glow_decode_gate *gate = glow_decode_gate_new(GLOW_DECODE_BUDGET);
  if (!gate) {
    rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", dir);
    goto done;
  }
  glow_decode_opts d = decode_opts(o, gate);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = start; i < n; i++) {
    char e[512];
    int r = glow_image_decode(f.paths.v[i], &d, h, w, c, ds->x + per * (size_t)i, NULL, NULL, NULL,
                              NULL, e, sizeof e);
    if (r) {
      f.st[i] = r;
      f.msg[i] = strdup(e);
    }
  }
  glow_decode_gate_free(gate);
  /* in path order: the first failure is the error (strict), or each is
     recorded and the good slots move down over the skipped ones */
  int64_t k = 0;
  for (int64_t i = 0; i < n && !rc; i++) {
    if (f.st[i]) {
      rc = folder_failed(f.paths.v[i], f.st[i], f.msg[i], o->strict, sk, err, errlen);
      continue;
    }
    if (k != i) {
      memcpy(ds->x + per * (size_t)k, ds->x + per * (size_t)i, per);
      char *t = f.paths.v[k]; /* a swap: every path stays owned by f.paths once */
      f.paths.v[k] = f.paths.v[i];
      f.paths.v[i] = t;
    }
    if (f.labels) f.labels[k] = f.labels[i];
    k++;
  }
  if (rc) goto done;
  if (k == 0) {
    rc = fail(err, errlen, GLOW_EDATA, "%s: none of its %lld image files could be read", dir,
              (long long)n);
    goto done;
  }
  if (k < n) {
    uint8_t *shrunk = (uint8_t *)realloc(ds->x, per * (size_t)k);
    if (shrunk) ds->x = shrunk;
  }
  ds->n = k;
  ds->h = h;
  ds->w = w;
  ds->c = c;
  ds->skipped = n - k;
  /* the kept images' paths, handed over (f.paths frees the skipped ones) */
  ds->paths = (char **)malloc(sizeof(char *) * (size_t)k);
  if (!ds->paths) {
    rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", dir);
    goto done;
  }
  for (int64_t i = 0; i < k; i++) {
    ds->paths[i] = f.paths.v[i];
    f.paths.v[i] = NULL;
  }
  if (f.labels) {
    ds->y = f.labels;
    f.labels = NULL;
    ds->classes = (int)f.classes.n;
    ds->class_names = f.classes.v; /* hand over the names */
    memset(&f.classes, 0, sizeof f.classes);
  }
done:
  folder_free(&f);
  if (rc) {
    glow_dataset_free(ds);
    glow_skips_free(sk);
  } else if (sk == &local) {
    glow_skips_free(sk);
  }
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

/* the stored pixels of images idx {b}: image k at (*src)[k * per] when
 * *src is set (a pack's, read into a new buffer the caller frees), else at
 * ds->x + idx[k] * per */
static int pack_gather(glow_dataset *ds, const int64_t *idx, int64_t b, uint8_t **src,
                       char *err, size_t errlen);

int glow_dataset_batch(glow_dataset *ds, const int64_t *idx, int64_t b, int n_bits,
                       uint64_t seed, uint64_t epoch, int noise, float *x, int *y, char *err,
                       size_t errlen) {
  size_t d = (size_t)ds->h * ds->w * ds->c;
  uint8_t *got = NULL;
  int rc = pack_gather(ds, idx, b, &got, err, errlen);
  if (rc) return rc;
#pragma omp parallel for if ((size_t)b * d > 262144)
  for (int64_t k = 0; k < b; k++) {
    glow_rng r;
    glow_rng_seed(&r, glow_data_hash(seed, epoch, (uint64_t)idx[k] + 1));
    const uint8_t *s = got ? got + (size_t)k * d : ds->x + (size_t)idx[k] * d;
    glow_preprocess(s, x + (size_t)k * d, d, n_bits, noise ? &r : NULL);
  }
  free(got);
  if (y && ds->y)
    for (int64_t k = 0; k < b; k++) y[k] = ds->y[idx[k]];
  return GLOW_OK;
}

/* ------------------------------------------------------------------ windows, flips */
uint64_t glow_data_aug_hash(uint64_t seed, uint64_t epoch, uint64_t index) {
  uint64_t h = mix64(seed + 0xA0761D6478BD642Full);
  h = mix64(h ^ (epoch + 0xE7037ED1A0B428DBull));
  return mix64(h ^ (index + 0x8EBC6AF09C88C6E3ull));
}

#define OUT_H(ds) ((ds)->oh ? (ds)->oh : (ds)->h)
#define OUT_W(ds) ((ds)->ow ? (ds)->ow : (ds)->w)

void glow_dataset_window(const glow_dataset *ds, int64_t i, uint64_t seed, uint64_t epoch,
                         int flip, int crop_random, int *y0, int *x0, int *flipped) {
  int oh = OUT_H(ds), ow = OUT_W(ds);
  uint64_t hi = flip || crop_random ? glow_data_aug_hash(seed, epoch, (uint64_t)i + 1) : 0;
  if (crop_random) {
    *y0 = (int)(((hi >> 32) & 0x7FFFFFFFu) % (uint64_t)(ds->h - oh + 1));
    *x0 = (int)(((hi >> 1) & 0x7FFFFFFFu) % (uint64_t)(ds->w - ow + 1));
  } else {
    *y0 = (ds->h - oh) / 2;
    *x0 = (ds->w - ow) / 2;
  }
  *flipped = flip ? (int)(hi & 1) : 0;
}

int glow_dataset_batch_aug(glow_dataset *ds, const int64_t *idx, int64_t b, int n_bits,
                           uint64_t seed, uint64_t epoch, int noise, int flip, int crop_random,
                           float *x, int *y, char *err, size_t errlen) {
  int oh = OUT_H(ds), ow = OUT_W(ds), c = ds->c;
  size_t per = (size_t)ds->h * ds->w * c;
  if (!flip && !crop_random && oh == ds->h && ow == ds->w)
    return glow_dataset_batch(ds, idx, b, n_bits, seed, epoch, noise, x, y, err, errlen);
  size_t d = (size_t)oh * ow * c, row = (size_t)ow * c;
  uint8_t *win = (uint8_t *)malloc(d * (size_t)b), *got = NULL;
  if (!win) return fail(err, errlen, GLOW_ENOMEM, "out of memory for %lld images", (long long)b);
  int rc = pack_gather(ds, idx, b, &got, err, errlen);
  if (rc) {
    free(win);
    return rc;
  }
#pragma omp parallel for if ((size_t)b * d > 262144)
  for (int64_t k = 0; k < b; k++) {
    int y0, x0, fl;
    glow_dataset_window(ds, idx[k], seed, epoch, flip, crop_random, &y0, &x0, &fl);
    const uint8_t *src = got ? got + per * (size_t)k : ds->x + per * (size_t)idx[k];
    uint8_t *dst = win + d * (size_t)k;
    for (int i = 0; i < oh; i++) {
      const uint8_t *s = src + ((size_t)(y0 + i) * ds->w + x0) * c;
      uint8_t *o = dst + row * i;
      if (!fl) {
        memcpy(o, s, row);
      } else {
        for (int j = 0; j < ow; j++) memcpy(o + (size_t)j * c, s + (size_t)(ow - 1 - j) * c, (size_t)c);
      }
    }
    glow_rng r;
    glow_rng_seed(&r, glow_data_hash(seed, epoch, (uint64_t)idx[k] + 1));
    glow_preprocess(dst, x + d * (size_t)k, d, n_bits, noise ? &r : NULL);
  }
  free(got);
  free(win);
  if (y && ds->y)
    for (int64_t k = 0; k < b; k++) y[k] = ds->y[idx[k]];
  return GLOW_OK;
}

/* ------------------------------------------------------------------ packed files */
/* docs/FORMAT.md, "Packed image sets". Little-endian:
 *   0  "GLOWPACK"   8  u32 version (1)   12 u32 reserved (0)   16 u64 n
 *   24 u32 h   28 u32 w   32 u32 c   36 u32 classes   40 u64 data offset
 *   48 classes x (u32 length, the name's bytes), then n x i32 labels when
 *   classes > 0, zeros up to the data offset (a multiple of 4096), then
 *   the n x h x w x c pixels (NHWC); the file ends there.
 * An opened pack keeps its descriptor, and for images smaller than a page a
 * mapping that is never touched: the images a batch needs are copied out by
 * the kernel (process_vm_readv from the mapping, or pread), since touching
 * a mapping of a file truncated under it raises SIGBUS; after the reads, the
 * file's length and modification time must still be those it was opened
 * with. */
#define PACK_MAGIC "GLOWPACK"
#define PACK_VERSION 1u
#define PACK_FIXED 48
#define PACK_ALIGN 4096
#define PACK_MAX_NAME 4096

static void put32(uint8_t *p, uint32_t v) {
  for (int k = 0; k < 4; k++) p[k] = (uint8_t)(v >> (8 * k));
}
static void put64(uint8_t *p, uint64_t v) {
  for (int k = 0; k < 8; k++) p[k] = (uint8_t)(v >> (8 * k));
}
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

/* the most bytes a header of n images and classes names can take before the
   data: the fixed part, each name at its longest, 4 bytes a label, rounded
   up to the alignment (a huge n saturates; the file's length refuses it) */
static uint64_t pack_header_max(uint64_t n, uint32_t classes) {
  uint64_t len = PACK_FIXED + (uint64_t)classes * (4 + PACK_MAX_NAME);
  if (classes) len += n > ((uint64_t)1 << 60) ? (uint64_t)1 << 62 : 4 * n;
  return (len + PACK_ALIGN - 1) / PACK_ALIGN * PACK_ALIGN;
}

/* exactly len bytes at off: 0, -1 when the file ends first, or an errno value */
static int pread_all(int fd, void *buf, size_t len, uint64_t off) {
  uint8_t *p = (uint8_t *)buf;
  while (len) {
    ssize_t got = pread(fd, p, len, (off_t)off);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return errno ? errno : EIO;
    if (got == 0) return -1;
    p += got;
    off += (uint64_t)got;
    len -= (size_t)got;
  }
  return 0;
}

/* pread_all with its message: GLOW_OK, 1 when the file ends first (it is
   shorter than when it was measured), or GLOW_EDATA with the reason */
static int pread_full(int fd, void *buf, size_t len, uint64_t off, const char *path, char *err,
                      size_t errlen) {
  int e = pread_all(fd, buf, len, off);
  if (e > 0) return fail(err, errlen, GLOW_EDATA, "cannot read %s: %s", path, strerror(e));
  return e < 0 ? 1 : GLOW_OK;
}

static int64_t mtime_ns(const struct stat *st) {
  return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* the error for a pack file that is no longer what it was (len bytes) */
static int pack_changed(int fd, const char *path, uint64_t len, const char *when, char *err,
                        size_t errlen) {
  struct stat st;
  if (fstat(fd, &st) != 0) return fail(err, errlen, GLOW_EDATA, "cannot read %s: %s", path, strerror(errno));
  if ((uint64_t)st.st_size != len)
    return fail(err, errlen, GLOW_EDATA, "%s: changed %s (now %llu bytes, was %llu)", path, when,
                (unsigned long long)st.st_size, (unsigned long long)len);
  return fail(err, errlen, GLOW_EDATA, "%s: changed %s (modified since it was opened)", path, when);
}

/* whether process_vm_readv serves (a seccomp filter may refuse it: then
   pread, from then on) */
static atomic_int vm_readv_refused;

/* images idx {b} of a pack copied out of its mapping into buf {b, h, w, c}
   by process_vm_readv, one iovec per run of consecutive images: the kernel
   copies, and a page past the end of a file truncated since it was mapped
   fails the call (EFAULT) where touching it would raise SIGBUS. One call
   for up to 256 runs, against one pread a run. 1: all read; 0: not (the
   caller reads with pread, which finds out why) */
static int pack_read_vm(const glow_dataset *ds, const int64_t *idx, int64_t b, uint8_t *buf) {
  enum { MAXV = 256 };
  struct iovec lv[MAXV], rv[MAXV];
  size_t per = (size_t)ds->h * ds->w * ds->c;
  uint8_t *data = (uint8_t *)ds->map + ds->data_off;
  pid_t self = getpid();
  for (int64_t k = 0; k < b;) {
    int cnt = 0;
    size_t want = 0;
    for (; k < b && cnt < MAXV; cnt++) {
      int64_t j = k + 1;
      while (j < b && idx[j] == idx[j - 1] + 1) j++;
      size_t len = per * (size_t)(j - k);
      lv[cnt].iov_base = buf + per * (size_t)k;
      rv[cnt].iov_base = data + per * (size_t)idx[k];
      lv[cnt].iov_len = rv[cnt].iov_len = len;
      want += len;
      k = j;
    }
    ssize_t got = process_vm_readv(self, lv, (unsigned long)cnt, rv, (unsigned long)cnt, 0);
    if (got == (ssize_t)want) continue;
    if (got < 0 && errno != EFAULT) atomic_store_explicit(&vm_readv_refused, 1, memory_order_relaxed);
    return 0;
  }
  return 1;
}

/* the stored pixels of images idx {b} of a pack into buf {b, h, w, c}: out
   of the mapping (pack_read_vm) when there is one, else with one pread a
   run of consecutive images (in a shuffled batch, one an image: about 1.8 us
   each on the AMD EPYC VM, as much as preprocessing an image of 28x28);
   then the file must still have the length and modification time it was
   opened with, so bytes read while it was rewritten (cp or rsync --inplace
   over it) are not used */
static int pack_read(glow_dataset *ds, const int64_t *idx, int64_t b, uint8_t *buf, char *err,
                     size_t errlen) {
  uint64_t per = (uint64_t)ds->h * ds->w * ds->c;
  int e = 0; /* an errno value, or -1: the file ended */
  if (!ds->map || atomic_load_explicit(&vm_readv_refused, memory_order_relaxed) ||
      !pack_read_vm(ds, idx, b, buf))
    for (int64_t k = 0, j; k < b && !e; k = j) {
      for (j = k + 1; j < b && idx[j] == idx[j - 1] + 1; j++) {
      }
      e = pread_all(ds->fd, buf + per * (uint64_t)k, (size_t)(per * (uint64_t)(j - k)),
                    ds->data_off + per * (uint64_t)idx[k]);
    }
  if (e < 0) return pack_changed(ds->fd, ds->pack, ds->pack_len, "while in use", err, errlen);
  if (e) return fail(err, errlen, GLOW_EDATA, "cannot read %s: %s", ds->pack, strerror(e));
  struct stat st;
  if (fstat(ds->fd, &st) != 0)
    return fail(err, errlen, GLOW_EDATA, "cannot read %s: %s", ds->pack, strerror(errno));
  if ((uint64_t)st.st_size != ds->pack_len || mtime_ns(&st) != ds->pack_mtime)
    return pack_changed(ds->fd, ds->pack, ds->pack_len, "while in use", err, errlen);
  /* the pages the kernel mapped in for the copies count in the resident set */
  ds->touched += (size_t)(per * (uint64_t)b);
  if (ds->map && ds->touched > GLOW_DROP_BYTES) {
    madvise(ds->map, (size_t)ds->pack_len, MADV_DONTNEED);
    ds->touched = 0;
  }
  return GLOW_OK;
}

static int pack_gather(glow_dataset *ds, const int64_t *idx, int64_t b, uint8_t **src,
                       char *err, size_t errlen) {
  *src = NULL;
  if (!ds->pack) return GLOW_OK;
  size_t per = (size_t)ds->h * ds->w * ds->c;
  uint8_t *buf = (uint8_t *)malloc(per * (size_t)b);
  if (!buf) return fail(err, errlen, GLOW_ENOMEM, "out of memory for %lld images", (long long)b);
  int rc = pack_read(ds, idx, b, buf, err, errlen);
  if (rc) {
    free(buf);
    return rc;
  }
  *src = buf;
  return GLOW_OK;
}

typedef struct {
  FILE *f;
  char *tmp;
  const char *path;
  int64_t nmax, n;
  int h, w, c, classes;
  char *const *names;
  int *labels;
  uint64_t data_off;
  size_t per;
} pack_writer;

static void pw_abort(pack_writer *p) {
  if (p->f) fclose(p->f);
  if (p->tmp) remove(p->tmp);
  free(p->tmp);
  free(p->labels);
  memset(p, 0, sizeof *p);
}

static int pw_begin(pack_writer *p, const char *path, int64_t nmax, int h, int w, int c,
                    int classes, char *const *names, char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  p->path = path;
  p->nmax = nmax;
  p->h = h;
  p->w = w;
  p->c = c;
  p->classes = classes;
  p->names = names;
  p->per = (size_t)h * w * c;
  uint64_t len = PACK_FIXED;
  for (int k = 0; k < classes; k++) {
    size_t l = strlen(names[k]);
    if (l > PACK_MAX_NAME)
      return fail(err, errlen, GLOW_EDATA, "%s: class name %d is longer than %d bytes", path, k,
                  PACK_MAX_NAME);
    len += 4 + l;
  }
  if (classes) len += 4 * (uint64_t)nmax;
  p->data_off = (len + PACK_ALIGN - 1) / PACK_ALIGN * PACK_ALIGN;
  /* a folder at path would only refuse the rename, after all the work */
  struct stat st;
  if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
    return fail(err, errlen, GLOW_EDATA, "cannot write %s: %s", path, strerror(EISDIR));
  if (classes) {
    p->labels = (int *)malloc(sizeof(int) * (size_t)(nmax ? nmax : 1));
    if (!p->labels) return fail(err, errlen, GLOW_ENOMEM, "%s: out of memory for labels", path);
  }
  /* path.tmp.PID.XXXXXX, locked while it is written: glow_pack_remove_stale
     takes it for stale only once PID is gone and the lock is free */
  size_t lp = strlen(path);
  p->tmp = (char *)malloc(lp + 40);
  if (!p->tmp) {
    pw_abort(p);
    return fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
  }
  snprintf(p->tmp, lp + 40, "%s.tmp.%ld.XXXXXX", path, (long)getpid());
  int fd = mkstemp(p->tmp);
  if (fd < 0) {
    int e = errno;
    free(p->tmp);
    p->tmp = NULL;
    pw_abort(p);
    return fail(err, errlen, GLOW_EDATA, "cannot write %s: %s", path, strerror(e));
  }
  (void)flock(fd, LOCK_EX | LOCK_NB); /* a new file: only fails where there are no locks */
  fchmod(fd, 0644);
  p->f = fdopen(fd, "wb");
  if (!p->f) {
    int e = errno;
    close(fd);
    pw_abort(p);
    return fail(err, errlen, GLOW_EDATA, "cannot write %s: %s", path, strerror(e));
  }
  if (fseeko(p->f, (off_t)p->data_off, SEEK_SET) != 0) {
    int e = errno;
    pw_abort(p);
    return fail(err, errlen, GLOW_EDATA, "cannot write %s: %s", path, strerror(e));
  }
  return GLOW_OK;
}

static int pw_add(pack_writer *p, const uint8_t *img, int label, char *err, size_t errlen) {
  /* a trapped SIGINT or SIGTERM stops the pack between two images (the
   * caller's pw_abort removes the temporary file) */
  if (glow_interrupted()) return fail(err, errlen, GLOW_EDATA, "%s: interrupted", p->path);
  if (fwrite(img, 1, p->per, p->f) != p->per)
    return fail(err, errlen, GLOW_EDATA, "cannot write %s: %s", p->path,
                strerror(errno ? errno : EIO));
  if (p->labels) p->labels[p->n] = label;
  p->n++;
  return GLOW_OK;
}

/* p's header with the data at off into hdr {off} */
static void pw_header(const pack_writer *p, uint8_t *hdr, uint64_t off) {
  memset(hdr, 0, (size_t)off);
  memcpy(hdr, PACK_MAGIC, 8);
  put32(hdr + 8, PACK_VERSION);
  put64(hdr + 16, (uint64_t)p->n);
  put32(hdr + 24, (uint32_t)p->h);
  put32(hdr + 28, (uint32_t)p->w);
  put32(hdr + 32, (uint32_t)p->c);
  put32(hdr + 36, (uint32_t)p->classes);
  put64(hdr + 40, off);
  size_t at = PACK_FIXED;
  for (int k = 0; k < p->classes; k++) {
    size_t l = strlen(p->names[k]);
    put32(hdr + at, (uint32_t)l);
    memcpy(hdr + at + 4, p->names[k], l);
    at += 4 + l;
  }
  for (int64_t i = 0; p->labels && i < p->n; i++, at += 4) put32(hdr + at, (uint32_t)p->labels[i]);
}

/* the pixels written at p->data_off moved down to off (< data_off), front
   to back, and the file cut after them: 0, or an errno value */
static int pw_move_down(const pack_writer *p, int fd, uint64_t off) {
  uint64_t bytes = (uint64_t)p->n * p->per;
  size_t cap = (size_t)1 << 20;
  uint8_t *buf = (uint8_t *)malloc(cap);
  if (!buf) return ENOMEM;
  int e = 0;
  for (uint64_t done = 0; !e && done < bytes;) {
    size_t chunk = bytes - done < cap ? (size_t)(bytes - done) : cap;
    ssize_t got = pread(fd, buf, chunk, (off_t)(p->data_off + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      e = got < 0 ? errno : EIO;
      break;
    }
    for (ssize_t put = 0; !e && put < got;) {
      ssize_t w = pwrite(fd, buf + put, (size_t)(got - put), (off_t)(off + done + (uint64_t)put));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) e = w < 0 ? errno : EIO;
      put += w > 0 ? w : 0;
    }
    done += (uint64_t)got;
  }
  free(buf);
  if (!e && ftruncate(fd, (off_t)(off + bytes)) != 0) e = errno;
  return e;
}

/* the header, then flush, sync, close and rename into place; aborts on
 * failure. When fewer images came than room was left for (files skipped),
 * the pixels move down to the offset the images there are need, so the data
 * offset of every pack is within what its header can need (pack_header_max). */
static int pw_finish(pack_writer *p, char *err, size_t errlen) {
  const char *path = p->path; /* for the messages: pw_abort clears p */
  uint64_t len = PACK_FIXED;
  for (int k = 0; k < p->classes; k++) len += 4 + strlen(p->names[k]);
  if (p->labels) len += 4 * (uint64_t)p->n;
  uint64_t off = (len + PACK_ALIGN - 1) / PACK_ALIGN * PACK_ALIGN;
  uint8_t *hdr = (uint8_t *)malloc((size_t)off);
  if (!hdr) {
    pw_abort(p);
    return fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
  }
  pw_header(p, hdr, off);
  int e = 0, fd = fileno(p->f);
  errno = 0;
  if (fflush(p->f) != 0) e = errno ? errno : EIO;
  if (!e && off < p->data_off) e = pw_move_down(p, fd, off);
  errno = 0;
  if (!e && (pwrite(fd, hdr, (size_t)off, 0) != (ssize_t)off || fsync(fd) != 0))
    e = errno ? errno : EIO;
  free(hdr);
  if (fclose(p->f) != 0 && !e) e = errno ? errno : EIO;
  p->f = NULL;
  if (!e && rename(p->tmp, path) != 0) e = errno;
  if (e) {
    pw_abort(p);
    return fail(err, errlen, GLOW_EDATA, "cannot write %s: %s", path, strerror(e));
  }
  free(p->tmp);
  p->tmp = NULL;
  pw_abort(p); /* frees the rest; the file is in place */
  return GLOW_OK;
}

int glow_pack_images(const char *dir, const glow_image_opts *o, int64_t limit, const char *path,
                     glow_skips *sk, int64_t *written, char *err, size_t errlen) {
  glow_skips local;
  if (!sk) sk = &local;
  memset(sk, 0, sizeof *sk);
  *written = 0;
  folder f;
  int rc = folder_open(dir, o, &f, sk, err, errlen);
  if (rc) {
    glow_skips_free(sk);
    return rc;
  }
  int64_t n = (int64_t)f.paths.n, nmax = limit > 0 && limit < n ? limit : n;
  sk->total += n; /* collect counted the names that belong to no class */
  pack_writer p;
  uint8_t *img = NULL;
  rc = pw_begin(&p, path, nmax, f.h, f.w, f.c, f.labels ? (int)f.classes.n : 0, f.classes.v, err,
                errlen);
  if (rc) goto done;
  img = (uint8_t *)malloc(p.per);
  if (!img) rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
  /* one image at a time: decode, convert, fit, write */
  for (int64_t i = 0; i < n && p.n < nmax && !rc; i++) {
    char e[512];
    int r = f.st[i];
    const char *m = f.msg[i];
    if (!r) {
      if (i == f.i0) {
        r = convert_fit(f.first, f.fh, f.fw, f.fc, f.h, f.w, f.c, img);
        free(f.first);
        f.first = NULL;
        if (r) m = "out of memory";
      } else {
        glow_decode_opts d = decode_opts(o, NULL);
        r = glow_image_decode(f.paths.v[i], &d, f.h, f.w, f.c, img, NULL, NULL, NULL, NULL, e,
                              sizeof e);
        m = e;
      }
    }
    if (r)
      rc = folder_failed(f.paths.v[i], r, m, o->strict, sk, err, errlen);
    else
      rc = pw_add(&p, img, f.labels ? f.labels[i] : 0, err, errlen);
  }
  if (!rc && p.n == 0)
    rc = fail(err, errlen, GLOW_EDATA, "%s: none of its %lld image files could be read", dir,
              (long long)n);
  if (!rc) {
    *written = p.n;
    rc = pw_finish(&p, err, errlen);
    if (rc) *written = 0;
  } else {
    pw_abort(&p);
  }
done:
  free(img);
  folder_free(&f);
  if (rc || sk == &local) glow_skips_free(sk);
  return rc;
}

int glow_pack_dataset(glow_dataset *src, char *const *names, int h, int w, int c, int repeat,
                      int flip, int64_t limit, const char *path, int64_t *written, char *err,
                      size_t errlen) {
  *written = 0;
  if (!h || !w) {
    h = src->h;
    w = src->w;
  }
  if (!c) c = src->c;
  if (h < 1 || w < 1 || (c != 1 && c != 3) || repeat < 1 || src->n < 1)
    return fail(err, errlen, GLOW_EDATA, "%s: cannot pack %lld images %dx%dx%d %d times", path,
                (long long)src->n, h, w, c, repeat);
  int64_t total = src->n * repeat, nmax = limit > 0 && limit < total ? limit : total;
  size_t sper = (size_t)src->h * src->w * src->c;
  int classes = src->y ? src->classes : 0;
  char **fallback = NULL; /* class names "0", "1", ... when none are given */
  if (classes && !names) names = src->class_names;
  if (classes && !names) {
    fallback = (char **)calloc((size_t)classes, sizeof(char *));
    int bad = !fallback;
    for (int k = 0; !bad && k < classes; k++) {
      char b[16];
      snprintf(b, sizeof b, "%d", k);
      bad = !(fallback[k] = strdup(b));
    }
    names = fallback;
    if (bad) {
      for (int k = 0; fallback && k < classes; k++) free(fallback[k]);
      free(fallback);
      return fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
    }
  }
  pack_writer p;
  int rc = pw_begin(&p, path, nmax, h, w, c, classes, names, err, errlen);
  uint8_t *img = NULL, *mirror = NULL, *stored = NULL;
  if (!rc) {
    img = (uint8_t *)malloc(p.per);
    mirror = (uint8_t *)malloc(sper);
    stored = src->pack ? (uint8_t *)malloc(sper) : NULL; /* a pack's image, read */
    if (!img || !mirror || (src->pack && !stored))
      rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
  }
  for (int64_t r = 0; r < repeat && p.n < nmax && !rc; r++)
    for (int64_t i = 0; i < src->n && p.n < nmax && !rc; i++) {
      const uint8_t *s = src->x + sper * (size_t)i;
      if (stored) {
        if ((rc = pack_read(src, &i, 1, stored, err, errlen)) != GLOW_OK) break;
        s = stored;
      }
      if (flip && (r & 1)) {
        size_t row = (size_t)src->w * src->c;
        for (int y = 0; y < src->h; y++)
          for (int x = 0; x < src->w; x++)
            memcpy(mirror + row * y + (size_t)x * src->c,
                   s + row * y + (size_t)(src->w - 1 - x) * src->c, (size_t)src->c);
        s = mirror;
      }
      if (convert_fit(s, src->h, src->w, src->c, h, w, c, img))
        rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
      else
        rc = pw_add(&p, img, src->y ? src->y[i] : 0, err, errlen);
    }
  if (!rc) {
    *written = p.n;
    rc = pw_finish(&p, err, errlen);
    if (rc) *written = 0;
  } else if (p.f) {
    pw_abort(&p);
  }
  for (int k = 0; fallback && k < classes; k++) free(fallback[k]);
  free(fallback);
  free(img);
  free(mirror);
  free(stored);
  return rc;
}

/* pread_full while opening: every read lies within the size fstat gave,
   so one that comes back short means the file shrank since */
static int open_read(int fd, void *buf, size_t len, uint64_t at, const char *path, uint64_t size,
                     char *err, size_t errlen) {
  int rc = pread_full(fd, buf, len, at, path, err, errlen);
  if (rc == 1) rc = pack_changed(fd, path, size, "while being opened", err, errlen);
  return rc;
}

int glow_open_pack(const char *path, glow_dataset *ds, char *err, size_t errlen) {
  memset(ds, 0, sizeof *ds);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(err, errlen, GLOW_EDATA, "cannot open %s: %s", path, strerror(errno));
  uint8_t *chunk = NULL;
  int rc = GLOW_OK;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    rc = fail(err, errlen, GLOW_EDATA, "cannot read %s: %s", path, strerror(errno));
    goto done;
  }
  if (!S_ISREG(st.st_mode)) {
    rc = fail(err, errlen, GLOW_EDATA, "%s: not a regular file", path);
    goto done;
  }
  uint64_t size = (uint64_t)st.st_size;
  uint8_t fixed[PACK_FIXED];
  size_t got = size < PACK_FIXED ? (size_t)size : PACK_FIXED;
  if ((rc = open_read(fd, fixed, got, 0, path, size, err, errlen)) != GLOW_OK) goto done;
  if (got >= 8 && memcmp(fixed, PACK_MAGIC, 8) != 0) {
    rc = fail(err, errlen, GLOW_EDATA, "%s: not a glow pack file (bad magic)", path);
    goto done;
  }
  if (got != PACK_FIXED) {
    rc = fail(err, errlen, GLOW_EDATA, "%s: truncated: %llu bytes, shorter than a pack header",
              path, (unsigned long long)size);
    goto done;
  }
  uint32_t version = get32(fixed + 8), h = get32(fixed + 24), w = get32(fixed + 28);
  uint32_t c = get32(fixed + 32), classes = get32(fixed + 36);
  uint64_t n = get64(fixed + 16), off = get64(fixed + 40);
  if (version != PACK_VERSION) {
    rc = fail(err, errlen, GLOW_EDATA, "%s: pack version %u, this build reads version %u", path,
              (unsigned)version, PACK_VERSION);
    goto done;
  }
  if (n < 1 || h < 1 || w < 1 || h > 65535 || w > 65535 || (c != 1 && c != 3) ||
      classes > 1u << 16 || off % PACK_ALIGN || off < PACK_FIXED) {
    rc = fail(err, errlen, GLOW_EDATA,
              "%s: bad header (%llu images of %ux%ux%u, %u classes, data at %llu)", path,
              (unsigned long long)n, (unsigned)h, (unsigned)w, (unsigned)c, (unsigned)classes,
              (unsigned long long)off);
    goto done;
  }
  /* nothing is allocated from off: it is checked against what a header
     can need, then read piece by piece */
  uint64_t most = pack_header_max(n, classes);
  if (off > most) {
    rc = fail(err, errlen, GLOW_EDATA,
              "%s: bad header: data offset %llu lies past the %llu bytes a header of %u class "
              "names and %llu labels can take",
              path, (unsigned long long)off, (unsigned long long)most, (unsigned)classes,
              (unsigned long long)(classes ? n : 0));
    goto done;
  }
  uint64_t per = (uint64_t)h * w * c;
  if (off > size || n > (size - off) / per || size - off != n * per) {
    if (off <= size && n <= (size - off) / per)
      rc = fail(err, errlen, GLOW_EDATA, "%s: longer than its header says (%llu bytes, expected %llu)",
                path, (unsigned long long)size, (unsigned long long)(off + n * per));
    else
      rc = fail(err, errlen, GLOW_EDATA,
                "%s: truncated: %llu bytes, its header says %llu images of %ux%ux%u at %llu", path,
                (unsigned long long)size, (unsigned long long)n, (unsigned)h, (unsigned)w,
                (unsigned)c, (unsigned long long)off);
    goto done;
  }
  ds->n = (int64_t)n;
  ds->h = (int)h;
  ds->w = (int)w;
  ds->c = (int)c;
  uint64_t at = PACK_FIXED;
  if (classes) {
    ds->classes = (int)classes;
    ds->class_names = (char **)calloc(classes, sizeof(char *));
    if (!ds->class_names) {
      rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory for %u class names", path,
                (unsigned)classes);
      goto done;
    }
    for (uint32_t k = 0; k < classes; k++) {
      uint8_t lb[4];
      uint32_t l = 0;
      if (at + 4 <= off) {
        if ((rc = open_read(fd, lb, 4, at, path, size, err, errlen)) != GLOW_OK) goto done;
        l = get32(lb);
      }
      if (at + 4 > off || l > PACK_MAX_NAME || at + 4 + l > off) {
        rc = fail(err, errlen, GLOW_EDATA, "%s: class name %u runs past the header", path,
                  (unsigned)k);
        goto done;
      }
      ds->class_names[k] = (char *)malloc(l + 1);
      if (!ds->class_names[k]) {
        rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
        goto done;
      }
      rc = open_read(fd, ds->class_names[k], l, at + 4, path, size, err, errlen);
      if (rc) goto done;
      ds->class_names[k][l] = 0;
      at += 4 + l;
    }
    if (n > (off - at) / 4) {
      rc = fail(err, errlen, GLOW_EDATA, "%s: the labels run past the header", path);
      goto done;
    }
    /* n <= (off - at) / 4 and off <= size: the labels are bytes of the file */
    ds->y = (int *)malloc(sizeof(int) * (size_t)n);
    chunk = (uint8_t *)malloc((size_t)1 << 16);
    if (!ds->y || !chunk) {
      rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory for %llu labels", path,
                (unsigned long long)n);
      goto done;
    }
    for (uint64_t i = 0; i < n;) {
      uint64_t m = n - i < ((uint64_t)1 << 14) ? n - i : (uint64_t)1 << 14;
      if ((rc = open_read(fd, chunk, (size_t)(4 * m), at, path, size, err, errlen)) != GLOW_OK)
        goto done;
      for (uint64_t j = 0; j < m; j++, i++, at += 4) {
        uint32_t v = get32(chunk + 4 * j);
        if (v >= classes) {
          rc = fail(err, errlen, GLOW_EDATA, "%s: image %llu has label %u, expected 0..%u", path,
                    (unsigned long long)i + 1, (unsigned)v, (unsigned)classes - 1);
          goto done;
        }
        ds->y[i] = (int)v;
      }
    }
  }
  ds->pack = strdup(path);
  if (!ds->pack) {
    rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
    goto done;
  }
  ds->fd = fd;
  fd = -1; /* the dataset's now */
  ds->data_off = off;
  ds->pack_len = size;
  ds->pack_mtime = mtime_ns(&st);
  /* images smaller than a page are copied out of a mapping (pack_read_vm):
     one pread each would cost more than the copy. An image of a page or
     more is read with pread: faulting its pages into a mapping costs as
     much, and they would count in the resident set. GLOW_PACK_READ=pread
     or =map chooses (to compare the two); a file system that cannot map
     gets pread. */
  const char *how = getenv("GLOW_PACK_READ");
  int use_map = how && strcmp(how, "map") == 0 ? 1 : how && strcmp(how, "pread") == 0 ? 0 : per < PACK_ALIGN;
  void *map = use_map ? mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, ds->fd, 0) : MAP_FAILED;
  ds->map = map == MAP_FAILED ? NULL : map;
done:
  free(chunk);
  if (fd >= 0) close(fd);
  if (rc) glow_dataset_free(ds);
  return rc;
}

/* the pid of a name base.tmp.PID.XXXXXX (pw_begin's template), or 0 */
static long pack_tmp_pid(const char *name, const char *base) {
  size_t lb = strlen(base);
  if (strncmp(name, base, lb) != 0 || strncmp(name + lb, ".tmp.", 5) != 0) return 0;
  const char *q = name + lb + 5;
  long pid = 0;
  int digits = 0;
  for (; *q >= '0' && *q <= '9'; q++, digits++) {
    if (digits == 0 && *q == '0') return 0;
    if (digits == 9) return 0;
    pid = pid * 10 + (*q - '0');
  }
  if (!digits || *q != '.') return 0;
  q++;
  for (int k = 0; k < 6; k++, q++)
    if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9'))) return 0;
  return *q ? 0 : pid;
}

int glow_pack_remove_stale(const char *path, glow_skips *removed, char *err, size_t errlen) {
  memset(removed, 0, sizeof *removed);
  const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
  size_t lead = (size_t)(base - path); /* the names removed are path's folder part + name */
  if (!*base) return GLOW_OK;
  char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
  if (!dir) return fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
  DIR *d = opendir(dir);
  if (!d) {
    int e = errno;
    int rc = e == ENOENT ? GLOW_OK
                         : fail(err, errlen, GLOW_EDATA, "cannot read directory %s: %s", dir, strerror(e));
    free(dir);
    return rc;
  }
  int rc = GLOW_OK, dfd = dirfd(d);
  struct dirent *ent;
  while (!rc && (ent = readdir(d)) != NULL) {
    const char *name = ent->d_name;
    long pid = pack_tmp_pid(name, base);
    if (pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st, now;
    /* this user's regular file, unlocked, and still the file of that name */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
        flock(fd, LOCK_EX | LOCK_NB) == 0 &&
        fstatat(dfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_dev == st.st_dev &&
        now.st_ino == st.st_ino && unlinkat(dfd, name, 0) == 0) {
      size_t ln = strlen(name);
      char *full = (char *)malloc(lead + ln + 1), why[64];
      if (full) {
        memcpy(full, path, lead);
        memcpy(full + lead, name, ln + 1);
      }
      snprintf(why, sizeof why, "left by process %ld, which is gone", pid);
      if (!full || skip_push(removed, full, why, GLOW_SKIP_CORRUPT))
        rc = fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
      free(full);
    }
    close(fd);
  }
  closedir(d);
  free(dir);
  if (rc) glow_skips_free(removed);
  return rc;
}
