/*
 * checkpoint.c -- the file layer of safetensors checkpoints: atomic writing
 * and size-checked reading.
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of
 * JSON, then the data buffer of raw little-endian values. This file knows
 * nothing about the JSON: the Lua side (lua/glow/checkpoint.lua) builds and
 * validates it. Here:
 *   - writing goes to a temporary file beside the target (path ".tmp-" pid,
 *     created new with O_EXCL | O_NOFOLLOW after removing whatever had that
 *     name: a planted symlink is never written through), which is flushed,
 *     fsync'ed and renamed over the target (rename replaces a symlink at
 *     the target, it does not write through it), so a crash or
 *     a full disk mid-write leaves any previous file intact; every failure
 *     removes the temporary file;
 *   - reading checks the frame (length prefix, header bounds, file size) and
 *     reads the header bytes and then the tensors' bytes straight into the
 *     caller's buffers, after checking that each range lies in the buffer.
 * Values are converted from/to little-endian on big-endian hosts. Functions
 * return GLOW_OK or a negative GLOW_ECKPT_* code with a message naming the
 * file; every path closes the file and frees what it allocated.
 */
#include "glow.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef unsigned long long ull;

#define fail glow_error /* message into err, return code */

static int host_is_le(void) {
  const uint16_t one = 1;
  return *(const unsigned char *)&one == 1;
}

static void put_le64(unsigned char *b, uint64_t v) {
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le64(const unsigned char *b) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)b[i] << (8 * i);
  return v;
}

static void swap32(void *p, size_t n) {
  unsigned char *b = p;
  for (size_t i = 0; i < n; i++, b += 4) {
    unsigned char t0 = b[0], t1 = b[1];
    b[0] = b[3];
    b[1] = b[2];
    b[2] = t1;
    b[3] = t0;
  }
}

size_t glow_checkpoint_temp_path(const char *path, char *out, size_t len) {
  int n = snprintf(out, len, "%s.tmp-%ld", path, (long)getpid());
  return n < 0 ? 0 : (size_t)n;
}

/* n floats as little-endian bytes; 1 on success */
static int write_floats(FILE *f, const float *x, size_t n) {
  if (n == 0) return 1;
  if (host_is_le()) return fwrite(x, sizeof(float), n, f) == n;
  float buf[4096];
  for (size_t i = 0; i < n; i += 4096) {
    size_t m = n - i < 4096 ? n - i : 4096;
    memcpy(buf, x + i, m * sizeof(float));
    swap32(buf, m);
    if (fwrite(buf, sizeof(float), m, f) != m) return 0;
  }
  return 1;
}

/* make the rename durable: fsync the directory holding path (best effort) */
static void sync_parent(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir;
  if (!slash) {
    dir = malloc(2);
    if (dir) strcpy(dir, ".");
  } else {
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    dir = malloc(n + 1);
    if (dir) {
      memcpy(dir, path, n);
      dir[n] = 0;
    }
  }
  if (!dir) return;
  int fd = open(dir, O_RDONLY);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
  free(dir);
}

int glow_checkpoint_write(const char *path, const char *header, size_t header_len, int count,
                          const float *const *data, const size_t *numel, char *err,
                          size_t errlen) {
  static const char spaces[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
  if (count < 0) return fail(err, errlen, GLOW_ECKPT_FORMAT, "%s: negative tensor count", path);
  size_t pad = (8 - header_len % 8) % 8;
  if ((uint64_t)header_len + pad > GLOW_CHECKPOINT_MAX_HEADER)
    return fail(err, errlen, GLOW_ECKPT_FORMAT,
                "%s: header of %llu bytes is over the 100 MB that readers accept", path,
                (ull)header_len);
  size_t tlen = glow_checkpoint_temp_path(path, NULL, 0);
  char *tmp = malloc(tlen + 1);
  if (!tmp) return fail(err, errlen, GLOW_ENOMEM, "%s: out of memory", path);
  glow_checkpoint_temp_path(path, tmp, tlen + 1);

  /* the temporary name is predictable (path ".tmp-" pid): whatever sits
   * there (a file left by a dead process of the same pid, or a symlink
   * planted to redirect the write) is removed, not followed, and the file
   * is created new (O_EXCL: a symlink made in between makes it fail) */
  FILE *f = NULL;
  if (unlink(tmp) != 0 && errno != ENOENT) {
    errno = errno == EPERM ? EISDIR : errno; /* Linux says EISDIR, POSIX allows EPERM */
  } else {
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0 && !(f = fdopen(fd, "wb"))) {
      int e = errno;
      close(fd);
      unlink(tmp);
      errno = e;
    }
  }
  if (!f) {
    int e = errno;
    fail(err, errlen, GLOW_ECKPT_IO, "%s: cannot create the temporary file %s: %s", path, tmp,
         strerror(e));
    free(tmp);
    return GLOW_ECKPT_IO;
  }
  const char *step = "write";
  unsigned char len8[8];
  put_le64(len8, (uint64_t)(header_len + pad));
  int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(header, 1, header_len, f) == header_len &&
           fwrite(spaces, 1, pad, f) == pad;
  for (int i = 0; ok && i < count; i++) ok = write_floats(f, data[i], numel[i]);
  if (ok && fflush(f) != 0) ok = 0;
  if (ok && fsync(fileno(f)) != 0) ok = 0, step = "sync";
  int e = ok ? 0 : errno;
  if (fclose(f) != 0 && ok) ok = 0, e = errno, step = "close";
  if (ok && rename(tmp, path) != 0) {
    e = errno;
    fail(err, errlen, GLOW_ECKPT_IO, "%s: cannot rename the temporary file %s over it: %s", path,
         tmp, strerror(e));
    unlink(tmp);
    free(tmp);
    return GLOW_ECKPT_IO;
  }
  if (!ok) {
    fail(err, errlen, GLOW_ECKPT_IO, "%s: cannot %s the temporary file %s: %s", path, step, tmp,
         e ? strerror(e) : "unknown error");
    unlink(tmp);
    free(tmp);
    return GLOW_ECKPT_IO;
  }
  free(tmp);
  sync_parent(path);
  return GLOW_OK;
}

/* open path for reading and give its size; NULL (and err) on failure */
static FILE *open_regular(const char *path, uint64_t *size, int *rc, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    *rc = fail(err, errlen, GLOW_ECKPT_IO, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fileno(f), &st) != 0) {
    *rc = fail(err, errlen, GLOW_ECKPT_IO, "%s: cannot stat: %s", path, strerror(errno));
    fclose(f);
    return NULL;
  }
  if (!S_ISREG(st.st_mode)) {
    *rc = fail(err, errlen, GLOW_ECKPT_IO, "%s: not a regular file", path);
    fclose(f);
    return NULL;
  }
  *size = (uint64_t)st.st_size;
  return f;
}

/* read n bytes at file position pos; 1 on success, else err */
static int read_at(FILE *f, const char *path, uint64_t pos, void *dst, size_t n, const char *what,
                   int *rc, char *err, size_t errlen) {
  if (fseeko(f, (off_t)pos, SEEK_SET) != 0) {
    *rc = fail(err, errlen, GLOW_ECKPT_IO, "%s: cannot seek to %s: %s", path, what,
               strerror(errno));
    return 0;
  }
  size_t got = n ? fread(dst, 1, n, f) : 0;
  if (got != n) {
    if (ferror(f))
      *rc = fail(err, errlen, GLOW_ECKPT_IO, "%s: cannot read %s: %s", path, what,
                 strerror(errno));
    else
      *rc = fail(err, errlen, GLOW_ECKPT_FORMAT,
                 "%s: %s ends early (%llu of %llu bytes): file truncated?", path, what, (ull)got,
                 (ull)n);
    return 0;
  }
  return 1;
}

/* the size must not have changed since the probe */
static int same_size(const char *path, uint64_t size, uint64_t expected, int *rc, char *err,
                     size_t errlen) {
  if (size == expected) return 1;
  *rc = fail(err, errlen, GLOW_ECKPT_IO, "%s: file changed while reading (%llu bytes, was %llu)",
             path, (ull)size, (ull)expected);
  return 0;
}

int glow_checkpoint_probe(const char *path, uint64_t *header_len, uint64_t *file_size, char *err,
                          size_t errlen) {
  int rc = GLOW_OK;
  uint64_t size;
  FILE *f = open_regular(path, &size, &rc, err, errlen);
  if (!f) return rc;
  unsigned char len8[8];
  if (size < 8) {
    rc = fail(err, errlen, GLOW_ECKPT_FORMAT,
              "%s: file of %llu bytes is too short for a safetensors file (the header length "
              "alone takes 8)",
              path, (ull)size);
  } else if (read_at(f, path, 0, len8, 8, "the header length", &rc, err, errlen)) {
    uint64_t n = get_le64(len8);
    if (n > GLOW_CHECKPOINT_MAX_HEADER)
      rc = fail(err, errlen, GLOW_ECKPT_FORMAT,
                "%s: header length %llu is absurd (over 100 MB): not a safetensors file?", path,
                (ull)n);
    else if (n > size - 8)
      rc = fail(err, errlen, GLOW_ECKPT_FORMAT,
                "%s: header length %llu runs past the end of the file (%llu bytes)", path,
                (ull)n, (ull)size);
    else {
      *header_len = n;
      *file_size = size;
    }
  }
  fclose(f);
  return rc;
}

int glow_checkpoint_read_header(const char *path, uint64_t header_len, uint64_t file_size,
                                char *dst, char *err, size_t errlen) {
  int rc = GLOW_OK;
  uint64_t size;
  FILE *f = open_regular(path, &size, &rc, err, errlen);
  if (!f) return rc;
  if (same_size(path, size, file_size, &rc, err, errlen) && header_len <= size - 8)
    read_at(f, path, 8, dst, (size_t)header_len, "the header", &rc, err, errlen);
  else if (rc == GLOW_OK)
    rc = fail(err, errlen, GLOW_ECKPT_FORMAT, "%s: header length %llu runs past the file", path,
              (ull)header_len);
  fclose(f);
  return rc;
}

int glow_checkpoint_read_data(const char *path, uint64_t header_len, uint64_t file_size,
                              int count, const uint64_t *begin, const size_t *numel,
                              float *const *dst, char *err, size_t errlen) {
  int rc = GLOW_OK;
  uint64_t size;
  FILE *f = open_regular(path, &size, &rc, err, errlen);
  if (!f) return rc;
  if (!same_size(path, size, file_size, &rc, err, errlen)) goto done;
  if (size < 8 || header_len > size - 8) {
    rc = fail(err, errlen, GLOW_ECKPT_FORMAT, "%s: header length %llu runs past the file", path,
              (ull)header_len);
    goto done;
  }
  uint64_t buffer = size - 8 - header_len;
  for (int i = 0; i < count; i++) { /* all ranges first: nothing is read from a bad file */
    uint64_t bytes = (uint64_t)numel[i] * 4;
    if (numel[i] > UINT64_MAX / 4 || begin[i] > buffer || bytes > buffer - begin[i]) {
      rc = fail(err, errlen, GLOW_ECKPT_FORMAT,
                "%s: tensor %d: bytes [%llu, %llu + %llu) lie outside the %llu-byte data buffer",
                path, i + 1, (ull)begin[i], (ull)begin[i], (ull)bytes, (ull)buffer);
      goto done;
    }
  }
  for (int i = 0; i < count; i++) {
    char what[64];
    snprintf(what, sizeof what, "the data of tensor %d", i + 1);
    if (!read_at(f, path, 8 + header_len + begin[i], dst[i], numel[i] * sizeof(float), what, &rc,
                 err, errlen))
      goto done;
    if (!host_is_le()) swap32(dst[i], numel[i]);
  }
done:
  fclose(f);
  return rc;
}
