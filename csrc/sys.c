/*
 * sys.c -- process services of the core: interrupts (SIGINT and SIGTERM
 * counted instead of killing the process, so that training can finish its
 * step and save, and long C loops such as a pack can stop cleanly), and
 * the SHA-256 of a file (through OpenSSL's libcrypto), which checkpoints
 * record for the model file that built them, and the output folder's
 * safety: a probe that a folder can be written (mkstemp, never a fixed
 * name), whole files written atomically (mkstemp and rename), and one
 * run's lock on a folder (flock).
 */
#define _POSIX_C_SOURCE 200809L
#include "glow.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

static volatile sig_atomic_t g_count = 0, g_last = 0;
static int g_trapped = 0;
static struct sigaction g_old_int, g_old_term;

/* the first signal is counted; the second restores the default action and
 * raises again, so the process ends at once (exit status 128 + signal) */
static void on_signal(int sig) {
  g_last = sig;
  if (g_count >= 1) {
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  g_count = 1;
}

int glow_trap_signals(void) {
  if (g_trapped) return GLOW_OK;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  /* SA_RESTART: a read or write in progress is not cut short by the first
   * signal; the loops poll glow_interrupted() instead */
  sa.sa_flags = SA_RESTART;
  if (sigaction(SIGINT, &sa, &g_old_int) != 0) return GLOW_EDATA;
  if (sigaction(SIGTERM, &sa, &g_old_term) != 0) {
    sigaction(SIGINT, &g_old_int, NULL);
    return GLOW_EDATA;
  }
  g_count = 0;
  g_last = 0;
  g_trapped = 1;
  return GLOW_OK;
}

void glow_untrap_signals(void) {
  if (!g_trapped) return;
  sigaction(SIGINT, &g_old_int, NULL);
  sigaction(SIGTERM, &g_old_term, NULL);
  g_trapped = 0;
}

int glow_interrupted(void) { return g_trapped && g_count ? (int)g_last : 0; }

int glow_sha256_file(const char *path, char hex[65], char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    return GLOW_EDATA;
  }
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int rc = GLOW_OK;
  if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
    snprintf(err, errlen, "%s: SHA-256 unavailable", path);
    rc = GLOW_ENOMEM;
  }
  unsigned char buf[65536];
  size_t got;
  while (!rc && (got = fread(buf, 1, sizeof buf, f)) > 0)
    if (EVP_DigestUpdate(ctx, buf, got) != 1) rc = GLOW_ENOMEM;
  if (!rc && ferror(f)) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno ? errno : EIO));
    rc = GLOW_EDATA;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!rc && (EVP_DigestFinal_ex(ctx, md, &len) != 1 || len != 32)) {
    snprintf(err, errlen, "%s: SHA-256 failed", path);
    rc = GLOW_ENOMEM;
  }
  if (!rc)
    for (unsigned i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  EVP_MD_CTX_free(ctx);
  fclose(f);
  return rc;
}

/* dir + "/" + name + "XXXXXX" in a new string (NULL when out of memory) */
static char *template_in(const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 9;
  char *t = (char *)malloc(n);
  if (t) snprintf(t, n, "%s/%sXXXXXX", dir, name);
  return t;
}

int glow_probe_dir(const char *dir, char *err, size_t errlen) {
  char *t = template_in(dir, ".glow-probe-");
  if (!t) {
    snprintf(err, errlen, "%s: out of memory", dir);
    return GLOW_ENOMEM;
  }
  int fd = mkstemp(t);
  if (fd < 0) {
    snprintf(err, errlen, "cannot write in the folder %s: %s", dir, strerror(errno));
    free(t);
    return GLOW_EDATA;
  }
  close(fd);
  unlink(t);
  free(t);
  return GLOW_OK;
}

int glow_write_file(const char *path, const char *bytes, size_t len, char *err, size_t errlen) {
  const char *slash = strrchr(path, '/');
  size_t dl = slash ? (size_t)(slash - path) : 1;
  char *dir = (char *)malloc(dl + 1);
  if (!dir) {
    snprintf(err, errlen, "%s: out of memory", path);
    return GLOW_ENOMEM;
  }
  if (slash)
    memcpy(dir, path, dl);
  else
    dir[0] = '.';
  dir[slash && dl == 0 ? 1 : dl] = 0;
  if (slash && dl == 0) dir[0] = '/';
  char *t = template_in(dir, ".glow-tmp-");
  free(dir);
  if (!t) {
    snprintf(err, errlen, "%s: out of memory", path);
    return GLOW_ENOMEM;
  }
  int fd = mkstemp(t), e = 0;
  if (fd < 0) {
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    free(t);
    return GLOW_EDATA;
  }
  fchmod(fd, 0644);
  size_t done = 0;
  while (!e && done < len) {
    ssize_t w = write(fd, bytes + done, len - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) e = w < 0 ? errno : EIO;
    else done += (size_t)w;
  }
  if (!e && fsync(fd) != 0) e = errno;
  if (close(fd) != 0 && !e) e = errno;
  if (!e && rename(t, path) != 0) e = errno;
  if (e) {
    unlink(t);
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
  }
  free(t);
  return e ? GLOW_EDATA : GLOW_OK;
}

int glow_lock_dir(const char *dir, long *holder, char *err, size_t errlen) {
  *holder = 0;
  size_t n = strlen(dir) + 12;
  char *p = (char *)malloc(n);
  if (!p) {
    snprintf(err, errlen, "%s: out of memory", dir);
    return -1;
  }
  snprintf(p, n, "%s/.glow-lock", dir);
  int fd = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) {
    snprintf(err, errlen, "cannot lock the folder %s (%s): %s", dir, p, strerror(errno));
    free(p);
    return -1;
  }
  free(p);
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, errlen, "cannot lock the folder %s: its .glow-lock is not a regular file", dir);
    close(fd);
    return -1;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    char buf[32] = {0};
    ssize_t r = pread(fd, buf, sizeof buf - 1, 0);
    if (r > 0) *holder = strtol(buf, NULL, 10);
    snprintf(err, errlen, "%s", e == EWOULDBLOCK ? "locked" : strerror(e));
    close(fd);
    return -1;
  }
  char buf[32];
  int len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len) {
    /* the lock holds all the same; only the holder's pid is not shown */
  }
  return fd;
}

/* ------------------------------------------------------------------ load */
int glow_others_running(void) {
  FILE *f = fopen("/proc/stat", "r");
  if (!f) return -1;
  char line[256];
  long running = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "procs_running %ld", &running) == 1) break;
  fclose(f);
  if (running < 0) return -1;
  DIR *d = opendir("/proc/self/task");
  if (!d) return -1;
  long own = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char p[64], buf[512];
    snprintf(p, sizeof p, "/proc/self/task/%.20s/stat", e->d_name);
    FILE *s = fopen(p, "r");
    if (!s) continue;
    size_t k = fread(buf, 1, sizeof buf - 1, s);
    fclose(s);
    buf[k] = 0;
    const char *r = strrchr(buf, ')'); /* the state follows the name, which may hold anything */
    if (r && r[1] == ' ' && r[2] == 'R') own++;
  }
  closedir(d);
  long o = running - own;
  return o < 0 ? 0 : (int)o;
}

/* the run-queue wait of every thread of this process, summed (ns): the second
 * field of /proc/self/task/<tid>/schedstat (on-CPU time, wait time, time
 * slices) */
int glow_own_wait_ns(long long *wait_ns) {
  DIR *d = opendir("/proc/self/task");
  if (!d) return -1;
  long long sum = 0;
  int seen = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char p[64];
    snprintf(p, sizeof p, "/proc/self/task/%.20s/schedstat", e->d_name);
    FILE *f = fopen(p, "r");
    if (!f) continue;
    long long run, wait;
    if (fscanf(f, "%lld %lld", &run, &wait) == 2) {
      sum += wait;
      seen++;
    }
    fclose(f);
  }
  closedir(d);
  if (!seen) return -1;
  *wait_ns = sum;
  return 0;
}
