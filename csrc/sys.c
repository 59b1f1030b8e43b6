/*
 * sys.c -- process services of the core: interrupts (SIGINT and SIGTERM
 * counted instead of killing the process, so that training can finish its
 * step and save, and long C loops such as a pack can stop cleanly), and
 * the SHA-256 of a file (through OpenSSL's libcrypto), which checkpoints
 * record for the model file that built them.
 */
#define _POSIX_C_SOURCE 200809L
#include "glow.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

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
