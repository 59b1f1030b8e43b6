/*
 * blas.c -- loading OpenBLAS and the one BLAS call the core makes, sgemm.
 *
 * Debian's OpenBLAS 0.3.21 (a DYNAMIC_ARCH build) does not know newer Xeons
 * and falls back to its Prescott (SSE3) kernel, several times slower than its
 * SkylakeX (AVX-512) kernel. OpenBLAS picks its kernel once, when it is
 * loaded, from OPENBLAS_CORETYPE. So the core does not link OpenBLAS: it
 * loads it with dlopen after choosing the kernel from the CPU's features
 * (unless the user set OPENBLAS_CORETYPE), then checks one product against a
 * naive reference. If that check fails it loads the fallback build with its
 * own default kernel instead. The OpenMP build of OpenBLAS is preferred: it
 * shares the OpenMP thread pool with the core's loops, so the two never
 * oversubscribe the cores.
 */
#include "glow.h"

#include <cblas.h>
#include <dlfcn.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef GLOW_OPENBLAS_LIB
#define GLOW_OPENBLAS_LIB "libopenblas.so.0"
#endif
#ifndef GLOW_OPENBLAS_FALLBACK
#define GLOW_OPENBLAS_FALLBACK "libopenblas.so.0"
#endif

typedef void (*sgemm_fn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE,
                         const enum CBLAS_TRANSPOSE, const blasint, const blasint, const blasint,
                         const float, const float *, const blasint, const float *, const blasint,
                         const float, float *, const blasint);

static sgemm_fn p_sgemm;
static char *(*p_corename)(void);
static int (*p_get_threads)(void);
static void (*p_set_threads)(int);
static char blas_error[512];
static char blas_lib[256];
static char blas_forced[32];

static const char *choose_core(void) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return NULL;
}

/* one product against a naive double reference, with every transpose */
static int check_sgemm(void) {
  enum { M = 37, N = 29, K = 53 };
  static float a[M * K], b[K * N], c[M * N];
  glow_rng r;
  glow_rng_seed(&r, 12345);
  glow_randn(&r, a, M * K, 1.0f);
  glow_randn(&r, b, K * N, 1.0f);
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      /* the same logical product A(MxK) B(KxN) with A or B stored transposed */
      p_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
              K, 1.0f, a, ta ? M : K, b, tb ? K : N, 0.0f, c, N);
      for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
          double s = 0;
          for (int k = 0; k < K; k++)
            s += (double)(ta ? a[k * M + i] : a[i * K + k]) * (tb ? b[j * K + k] : b[k * N + j]);
          if (fabs(s - c[i * N + j]) > 1e-3 * (1 + fabs(s))) return 0;
        }
    }
  return 1;
}

static int load(const char *path) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    snprintf(blas_error, sizeof blas_error, "cannot load OpenBLAS (%s): %s", path, dlerror());
    return 0;
  }
  p_sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
  p_corename = (char *(*)(void))dlsym(h, "openblas_get_corename");
  p_get_threads = (int (*)(void))dlsym(h, "openblas_get_num_threads");
  p_set_threads = (void (*)(int))dlsym(h, "openblas_set_num_threads");
  if (!p_sgemm) {
    snprintf(blas_error, sizeof blas_error, "%s has no cblas_sgemm", path);
    return 0;
  }
  snprintf(blas_lib, sizeof blas_lib, "%s", path);
  return 1;
}

int glow_blas_init(void) {
  if (p_sgemm) return GLOW_OK;
  const char *core = NULL;
  if (!getenv("OPENBLAS_CORETYPE")) {
    core = choose_core();
    if (core) {
      setenv("OPENBLAS_CORETYPE", core, 0);
      snprintf(blas_forced, sizeof blas_forced, "%s", core);
    }
  }
  if (load(GLOW_OPENBLAS_LIB) && check_sgemm()) return GLOW_OK;
  /* the chosen kernel computed wrong (or the library is missing): the
   * fallback build, with the kernel it picks itself */
  p_sgemm = NULL;
  if (core) unsetenv("OPENBLAS_CORETYPE");
  blas_forced[0] = 0;
  if (strcmp(GLOW_OPENBLAS_FALLBACK, GLOW_OPENBLAS_LIB) != 0 && load(GLOW_OPENBLAS_FALLBACK) &&
      check_sgemm())
    return GLOW_OK;
  p_sgemm = NULL;
  if (!blas_error[0]) snprintf(blas_error, sizeof blas_error, "OpenBLAS sgemm failed its check");
  return GLOW_EBLAS;
}

const char *glow_blas_error(void) { return blas_error; }

const char *glow_blas_kernel(void) {
  return p_sgemm && p_corename ? p_corename() : "none";
}

const char *glow_blas_library(void) { return blas_lib; }

int glow_blas_threads(void) { return p_sgemm && p_get_threads ? p_get_threads() : 0; }

/* One count for both pools: OpenMP's (the core's loops, and the OpenMP build
 * of OpenBLAS, which reads it at each call) and OpenBLAS's own (which the
 * pthread build keeps apart). The core calls sgemm either from one thread,
 * on OpenBLAS's threads, or one product per OpenMP thread, where the OpenMP
 * build runs single-threaded: so at most n threads work at any time. */
static void apply_threads(int n) {
  omp_set_num_threads(n);
  if (p_sgemm && p_set_threads) p_set_threads(n);
}

/* Adapting to the load (glow.h). wanted: the count asked for, 0 until read
 * from OpenMP's start value; adapt: -1 until decided from the environment. */
static int wanted = 0, adapt = -1, seen[3], nseen = 0;

static void decide(void) {
  if (!wanted) wanted = omp_get_max_threads();
  if (adapt >= 0) return;
  const char *a = getenv("GLOW_ADAPT_THREADS");
  if (a && *a) adapt = strcmp(a, "0") != 0;
  else adapt = getenv("OMP_NUM_THREADS") == NULL;
}

void glow_set_threads(int n) {
  if (n < 1) n = 1;
  decide();
  wanted = n;
  adapt = 0; /* a count chosen here is kept */
  apply_threads(n);
}

int glow_threads(void) { return omp_get_max_threads(); }

int glow_threads_wanted(void) {
  decide();
  return wanted;
}

int glow_threads_adapting(void) {
  decide();
  return adapt;
}

void glow_set_adapt(int on) {
  decide();
  adapt = on ? 1 : 0;
  nseen = 0;
  if (!adapt) apply_threads(wanted);
}

/* seconds on a clock that only goes forward */
static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double last_t = -1;
static long long last_wait = 0;

int glow_fit_threads(void) {
  decide();
  int cur = omp_get_max_threads();
  if (!adapt || wanted < 2) return cur;
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  if (online < 1) online = wanted;
  double t = mono_now();
  long long w = 0;
  int have_wait = glow_own_wait_ns(&w) == 0;
  double frac = 0;
  if (have_wait && last_t >= 0 && t > last_t) frac = (double)(w - last_wait) * 1e-9 / ((t - last_t) * cur);
  if (have_wait) last_t = t, last_wait = w;
  int n = cur;
  if (frac > 0.10) {
    /* the threads waited for CPUs: other work holds cores */
    int o = glow_others_running();
    if (o < 1) o = 1;
    long free = online - o;
    n = free < 1 ? 1 : free < cur ? (int)free : cur - 1;
    nseen = 0;
  } else if (cur < wanted) {
    /* below the count asked for: back up when the other tasks leave cores free */
    int o = glow_others_running();
    if (o >= 0) {
      seen[nseen % 3] = o;
      nseen++;
      int least = o;
      for (int i = 0; i < 3 && i < nseen; i++)
        if (seen[i] < least) least = seen[i];
      long free = online - least;
      if (nseen >= 3 && free > cur) n = free > wanted ? wanted : (int)free;
    }
  }
  if (n < 1) n = 1;
  if (n != cur) {
    apply_threads(n);
    last_t = -1; /* the next interval starts at the new count */
  }
  return n;
}

void glow_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                int lda, const float *b, int ldb, float beta, float *c, int ldc) {
  if (m == 0 || n == 0) return;
  p_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
          m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
