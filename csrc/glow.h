/*
 * glow.h -- the one public header of the Glow C core.
 *
 * Plain C11 kernels over raw float pointers. Images are NHWC and row-major;
 * "rows" means n*h*w pixels, each holding c contiguous channels. Kernels come
 * in forward / inverse / backward triples. Parameter gradients ACCUMULATE
 * (+=) into the caller's buffers, so zeroing them is an explicit step; input
 * gradients (dx) are OVERWRITTEN. Functions that can fail return 0 on success
 * and a negative GLOW_E* code otherwise; the core never exits or aborts.
 *
 * Shapes are given in a comment beside each declaration.
 */
#ifndef GLOW_H
#define GLOW_H

#include <stddef.h>
#include <stdint.h>

#define GLOW_OK 0
#define GLOW_ENOMEM (-1)
#define GLOW_ESINGULAR (-2)
#define GLOW_EBLAS (-3)

/* ---------------------------------------------------------------- memory */
float *glow_alloc(size_t n);            /* 64-byte aligned, zeroed; NULL on failure */
float *glow_alloc_uninit(size_t n);     /* 64-byte aligned, contents undefined */
/* Keep freed memory in the process (no mmap/munmap per large tensor), so a
 * training step does not page-fault its buffers in anew each time. */
void glow_memory_setup(void);
void glow_free(float *p);

/* printf-like message into err (errlen bytes, NULL ok); returns code: the
 * error convention of the I/O functions (data, image, checkpoint) */
int glow_error(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---------------------------------------------------------------- BLAS */
/* Load OpenBLAS with a fast kernel for this CPU and check it (blas.c). Must
 * run before any kernel that multiplies matrices; idempotent. */
int glow_blas_init(void);
const char *glow_blas_error(void);   /* why glow_blas_init failed */
const char *glow_blas_kernel(void);  /* OpenBLAS's name for its kernel */
const char *glow_blas_library(void); /* the file it was loaded from */
int glow_blas_threads(void);
/* the threads of the core's loops and of OpenBLAS, both set to n >= 1 (and read):
 * glow_set_threads pins the count (no adapting, below); glow_threads reads the
 * count in effect now */
void glow_set_threads(int n);
int glow_threads(void);
/* Threads that follow the load. While adapting is on (the default when
 * neither OMP_NUM_THREADS nor glow_set_threads chose a count, and
 * GLOW_ADAPT_THREADS is not 0; GLOW_ADAPT_THREADS=1 turns it on regardless),
 * glow_fit_threads, called once a training step or evaluation batch, goes
 * down only on evidence: when this process's threads spent more than a tenth
 * of the time since the last call waiting for a CPU (glow_own_wait_ns), it
 * runs on the cores the other runnable tasks leave free (glow_others_running,
 * at least one fewer). Below the count asked for, it goes back up as soon as
 * the least of the last 3 samples of the other tasks leaves cores free.
 * Returns the count in effect. glow_threads_wanted: the count asked for; glow_threads_adapting:
 * whether adapting is on (set with glow_set_adapt: 1 on, 0 off). */
int glow_fit_threads(void);
int glow_threads_wanted(void);
int glow_threads_adapting(void);
void glow_set_adapt(int on);
/* row-major C = alpha op(A) op(B) + beta C; op(A) {m, k}, op(B) {k, n} */
void glow_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* ---------------------------------------------------------------- ISA level (isa.c) */
/* The instruction-set level this copy of the core was compiled for
 * ("x86-64", "x86-64-v3", "x86-64-v4", "native" or "generic"), and the CPU
 * features its code needs, space-separated, by the names of csrc/isa/cpu.h.
 * glow/core.so (csrc/isa/lcore.c) reads glow_isa_required before it runs any
 * of this copy's code. */
const char *glow_isa_name(void);
extern const char glow_isa_required[];

/* ---------------------------------------------------------------- random */
/* A small counter-based generator (splitmix64): reproducible from a seed,
 * independent of thread count. */
typedef struct { uint64_t state; } glow_rng;
void glow_rng_seed(glow_rng *r, uint64_t seed);
uint64_t glow_rng_next(glow_rng *r);
double glow_rng_uniform(glow_rng *r);                     /* [0, 1) */
void glow_randn(glow_rng *r, float *out, size_t n, float std);     /* N(0, std^2) */
void glow_rand_uniform(glow_rng *r, float *out, size_t n);         /* U[0, 1) */

/* Inside a parallel region: this thread's index and the team size, for
 * splitting work into fixed shares (results then depend on the thread count
 * only); 0 and 1 without OpenMP. */
void glow_thread_share(int *t, int *tn);

/* ---------------------------------------------------------------- elementwise */
int glow_all_finite(const float *x, size_t n);            /* 1 if every value is finite */
/* 1 if every value of x {n} is finite; *lo, *hi = the smallest and largest
 * (NaNs ignored; +inf and -inf when n is 0) */
int glow_finite_range(const float *x, size_t n, float *lo, float *hi);
double glow_dot(const float *a, const float *b, size_t n); /* sum a*b in double */
void glow_relu_forward(const float *x, float *y, size_t n);
void glow_relu_backward(const float *x, const float *dy, float *dx, size_t n);
/* Per-channel sums over the rows of a {rows, c}, in double, in one parallel sweep:
 *   s1[k] = sum_r a[r,k]            (only where m[r,k] > 0 when mask is set)
 *   s2[k] = sum_r a[r,k] * m[r,k]
 * and out[r,k] = a[r,k] * scale[k] (0 where masked off). Any of m, scale, out, s1, s2 may be
 * NULL (scale NULL: out = a). s1, s2 are overwritten. Each thread sums a fixed share of the
 * rows and the shares are added in thread order: the result depends on the thread count only. */
void glow_channel_reduce(const float *a, const float *m, int mask, const float *scale, float *out,
                         double *s1, double *s2, size_t rows, int c);
/* the same without a mask, writing xo[r,k] = m[r,k] * rscale[k] - rshift[k] in the same sweep
 * (ActNorm's backward rebuilding its input while it reduces) */
void glow_channel_reduce_rebuild(const float *a, const float *m, const float *scale, float *out,
                                 double *s1, double *s2, const float *rscale, const float *rshift,
                                 float *xo, size_t rows, int c);

/* channel slicing: x {rows, c} -> a {rows, c1}, b {rows, c - c1} */
void glow_split_channels(const float *x, float *a, float *b, size_t rows, int c, int c1);
/* a {rows, c1}, b {rows, c - c1} -> x {rows, c} */
void glow_concat_channels(const float *a, const float *b, float *x, size_t rows, int c, int c1);
/* y[r, k] = x[r, perm[k]]; x, y {rows, c} */
void glow_permute_channels(const float *x, float *y, const int *perm, size_t rows, int c);

/* squeeze: x {n, h, w, c} -> y {n, h/2, w/2, 4c},
 * y[n, i, j, k*4 + dy*2 + dx] = x[n, 2i+dy, 2j+dx, k] */
void glow_squeeze(const float *x, float *y, int n, int h, int w, int c);
/* unsqueeze: the exact inverse; y {n, h/2, w/2, 4c} -> x {n, h, w, c} */
void glow_unsqueeze(const float *y, float *x, int n, int h, int w, int c);

/* ---------------------------------------------------------------- conv2d (conv.c) */
/* The one 2D convolution: stride 1, any odd kernel kh x kw, zero padding
 * pad_h, pad_w >= 0 and dilation dil >= 1 (the cross-correlation of PyTorch's
 * Conv2d). Output ho = h + 2 pad_h - dil (kh - 1), wo = w + 2 pad_w - dil (kw - 1),
 * both >= 1 (the caller checks). */
typedef struct {
  int n, h, w, cin, cout, kh, kw, pad_h, pad_w, dil;
} glow_conv_geom;
/* the "same" geometry of a k x k kernel (k odd): padding k / 2, dilation 1 */
glow_conv_geom glow_conv_same(int n, int h, int w, int cin, int cout, int k);
void glow_conv_out_size(const glow_conv_geom *g, int64_t *ho, int64_t *wo);
/* x {n, h, w, cin}, wt {kh, kw, cin, cout}, b {cout} or NULL, y {n, ho, wo, cout}
 * overwritten. Picks its kernel from the geometry: direct loops when
 * kh*kw*cin <= 64, sgemm on x itself for a 1x1 kernel without padding, else
 * im2col + sgemm or, with fewer output than input channels, the flipped-taps
 * product + col2im (conv.c). Returns GLOW_OK or GLOW_ENOMEM. */
int glow_conv_forward(const glow_conv_geom *g, const float *x, const float *wt, const float *b,
                      float *y);
/* dy {n, ho, wo, cout}: dx {n, h, w, cin} overwritten (NULL ok); dwt {kh, kw, cin, cout}
 * and db {cout} accumulate (NULL ok); nothing is accumulated on GLOW_ENOMEM */
int glow_conv_backward(const glow_conv_geom *g, const float *x, const float *wt, const float *dy,
                       float *dx, float *dwt, float *db);
/* direct-loop references of the two above (sums in double) */
void glow_conv_forward_naive(const glow_conv_geom *g, const float *x, const float *wt,
                             const float *b, float *y);
void glow_conv_backward_naive(const glow_conv_geom *g, const float *x, const float *wt,
                              const float *dy, float *dx, float *dwt, float *db);

/* y[r, k] = x[r, k] * exp(factor * g[k]); x, y {rows, c}, g {c} */
void glow_scale_exp_forward(const float *x, const float *g, float factor, float *y, size_t rows,
                            int c);
/* given y and dy: dx = dy * exp(factor g) (may be NULL); dg += factor * sum_r dy * y */
void glow_scale_exp_backward(const float *y, const float *g, float factor, const float *dy,
                             float *dx, float *dg, size_t rows, int c);

/* ---------------------------------------------------------------- the default coupling network */
/* h = ZeroConv3x3(ReLU(ActNorm2(Conv1x1(ReLU(ActNorm1(Conv3x3(x))))))), fused (net.c).
 * w1 {3,3,cin,width}, an1_b/an1_s {width}, w2 {1,1,width,width}, an2_b/an2_s {width},
 * w3 {3,3,width,cout}, b3 {cout}, g3 {cout}: the ZeroConv's output times exp(factor*g3). */
typedef struct {
  const float *w1, *an1_b, *an1_s, *w2, *an2_b, *an2_s, *w3, *b3, *g3;
  float factor;
  int cin, width, cout;
} glow_net;
/* parameter gradients, same shapes; they accumulate */
typedef struct {
  float *w1, *an1_b, *an1_s, *w2, *an2_b, *an2_s, *w3, *b3, *g3;
} glow_net_grad;
/* x {n,h,w,cin} -> y {n,h,w,cout}; a1, a2 {n,h,w,width} (may be NULL): the two hidden
 * activations (after each ReLU), written for a later backward */
int glow_net_forward(const glow_net *p, const float *x, float *y, float *a1, float *a2, int n,
                     int h, int w);
/* dx {n,h,w,cin} from dy {n,h,w,cout}. y (the forward output) and a1, a2 (the stored hidden
 * activations) may be NULL: then they are recomputed, a few images at a time */
int glow_net_backward(const glow_net *p, glow_net_grad *g, const float *x, const float *y,
                      const float *a1, const float *a2, const float *dy, float *dx, int n, int h,
                      int w);

/* ---------------------------------------------------------------- actnorm */
/* y = (x + b) * exp(s) per channel; x, y {rows, c}; b, s {c}.
 * logdet per image is hw * sum(s): the caller adds it. */
void glow_actnorm_forward(const float *x, const float *b, const float *s, float *y, size_t rows,
                          int c);
void glow_actnorm_inverse(const float *y, const float *b, const float *s, float *x, size_t rows,
                          int c);
/* from the OUTPUT y: dx = dy * exp(s) (dx may be NULL); db += sum dy*exp(s);
 * ds += sum dy*y + dlogdet_scale, where dlogdet_scale = hw * sum_n dL/dlogdet_n */
void glow_actnorm_backward(const float *y, const float *b, const float *s, const float *dy,
                           float *dx, float *db, float *ds, float dlogdet_scale, size_t rows,
                           int c);
/* glow_actnorm_backward that also rebuilds the input x = y * exp(-s) - b in the same
 * sweep over y and dy (as glow_actnorm_inverse computes it): the flow layer's backward */
void glow_actnorm_backward_rebuild(const float *y, const float *b, const float *s, const float *dy,
                                   float *x, float *dx, float *db, float *ds, float dlogdet_scale,
                                   size_t rows, int c);
/* y = max(0, (x + b) * exp(s)): ActNorm then ReLU in one sweep */
void glow_actnorm_relu_forward(const float *x, const float *b, const float *s, float *y,
                               size_t rows, int c);
/* the backward of glow_actnorm_relu_forward from its OUTPUT y: dx = dy * exp(s) where y > 0,
 * else 0; db += sum_{y>0} dy*exp(s); ds += sum dy*y */
void glow_actnorm_relu_backward(const float *y, const float *s, const float *dy, float *dx,
                                float *db, float *ds, size_t rows, int c);
/* data-dependent init: b = -mean, s = -log(std + 1e-6) over the rows (population std) */
void glow_actnorm_init(const float *x, float *b, float *s, size_t rows, int c);

/* ---------------------------------------------------------------- small dense linear algebra */
/* a {c, c} row-major, in double. Return GLOW_ESINGULAR for a singular matrix. */
int glow_slogdet(const double *a, int c, double *logabsdet, int *sign);
int glow_inverse(const double *a, double *ainv, int c);
/* q {c, c}: Q of the QR of a seeded Gaussian matrix (a random rotation) */
/* the largest c for the c x c matrix kernels below (c * c fits an int) */
#define GLOW_MAX_SQUARE 46340
void glow_random_rotation(double *q, int c, uint64_t seed);
/* w = P L U with partial pivoting: perm {c} (row i of w is row perm[i] of L U),
 * l {c, c} unit lower, u {c, c} upper including the diagonal. */
int glow_lu(const double *w, int *perm, double *l, double *u, int c);

/* ---------------------------------------------------------------- invertible 1x1 conv */
/* y[r] = W x[r]: x, y {rows, c}, w {c, c} */
void glow_invconv_forward(const float *x, const float *w, float *y, size_t rows, int c);
/* x[r] = W^-1 y[r], winv {c, c} */
void glow_invconv_inverse(const float *y, const float *winv, float *x, size_t rows, int c);
/* x (rebuilt input), dy {rows, c}: dx = dy W (may be NULL); dw += dy^T x, plus
 * dlogdet_scale * W^-T when winv is given (dlogdet_scale = hw * sum_n dL/dlogdet_n) */
void glow_invconv_backward(const float *x, const float *w, const float *winv, const float *dy,
                           float *dx, float *dw, float dlogdet_scale, size_t rows, int c);
/* LU form: W = P L (U + diag(sign * exp(log_s))); L masked to strict lower + I,
 * U masked to strict upper. perm {c}: row i of W is row perm[i] of L(U+diag). */
void glow_lu_weight(const float *l, const float *u, const float *log_s, const float *sign,
                    const int *perm, float *w, int c);
/* chain rule from dW {c,c} to dl, du, dlog_s (accumulate; masks applied);
 * dlog_s also gets dlogdet_scale, the log-determinant's own term */
void glow_lu_weight_backward(const float *l, const float *u, const float *log_s,
                             const float *sign, const int *perm, const float *dw, float *dl,
                             float *du, float *dlog_s, float dlogdet_scale, int c);

/* ---------------------------------------------------------------- coupling */
/* Affine: z2, y2 {rows, c2}; hnet {rows, 2*c2} = [shift | raw];
 * scale = sigmoid(raw + 2); y2 = (z2 + shift) * scale; logdet[img] += sum log scale
 * over that image's pix rows (logdet {n}, rows = n * pix). */
void glow_affine_forward(const float *z2, const float *hnet, float *y2, float *logdet,
                         size_t n, size_t pix, int c2);
void glow_affine_inverse(const float *y2, const float *hnet, float *z2, size_t n, size_t pix,
                         int c2);
/* From the OUTPUT: rebuilds z2 (may alias nothing), dz2 = dy2 * scale,
 * dhnet = [dshift | draw] (overwritten); dlogdet {n} or NULL. */
void glow_affine_backward(const float *y2, const float *hnet, const float *dy2,
                          const float *dlogdet, float *z2, float *dz2, float *dhnet, size_t n,
                          size_t pix, int c2);

/* ---------------------------------------------------------------- gaussian */
/* lp[img] = sum over the image's d elements of
 *   -0.5 log(2 pi) - logs - 0.5 (z - mean)^2 exp(-2 logs)
 * z, mean, logs {n, d}; mean and logs may be NULL (standard normal). */
void glow_gaussian_logp(const float *z, const float *mean, const float *logs, float *lp,
                        size_t n, size_t d);
/* dlp {n}: dz = dlp * d lp/dz (overwritten, may be NULL); dmean, dlogs accumulate (NULL ok) */
void glow_gaussian_logp_backward(const float *z, const float *mean, const float *logs,
                                 const float *dlp, float *dz, float *dmean, float *dlogs,
                                 size_t n, size_t d);
/* z = mean + t * exp(logs) * eps, eps ~ N(0, 1) drawn from r; mean/logs may be NULL */
void glow_gaussian_sample(const float *mean, const float *logs, float t, float *z, size_t count,
                          glow_rng *r);

/* ---------------------------------------------------------------- priors and heads */
/* Top prior parameters per image: mean/logs {n, pix, c} =
 *   base_mean/base_logs {pix, c} (NULL: zero) + cls {classes, 2c} row y[img] (NULL: none) */
void glow_top_prior_params(const float *base_mean, const float *base_logs, const float *cls,
                           const int *y, float *mean, float *logs, size_t n, size_t pix, int c);
/* reduce dmean, dlogs {n, pix, c} into the parameters' grads (accumulate; NULL skips) */
void glow_top_prior_backward(const float *dmean, const float *dlogs, const int *y,
                             float *dbase_mean, float *dbase_logs, float *dcls, size_t n,
                             size_t pix, int c);
/* logits {n, k} = mean over pix of z {n, pix, c} times w {c, k} plus b {k} */
void glow_classifier_forward(const float *z, const float *w, const float *b, float *logits,
                             size_t n, size_t pix, int c, int k);
/* dz overwritten (NULL ok); dw, db accumulate */
void glow_classifier_backward(const float *z, const float *w, const float *dlogits, float *dz,
                              float *dw, float *db, size_t n, size_t pix, int c, int k);
/* logp {n, k} = log_softmax(logits); returns the mean cross-entropy (nats) over n for
 * labels y; dlogits (NULL ok) = d(mean CE * scale)/dlogits, overwritten */
double glow_log_softmax_xent(const float *logits, const int *y, float *logp, float *dlogits,
                             float scale, size_t n, int k);

/* ---------------------------------------------------------------- process (sys.c) */
/* Interrupts: after glow_trap_signals() the first SIGINT or SIGTERM is only
 * counted (glow_interrupted() returns its number, 0 before), a second one
 * ends the process at once; glow_untrap_signals() restores the previous
 * handlers. Returns GLOW_OK or GLOW_EDATA (sigaction failed). */
int glow_trap_signals(void);
void glow_untrap_signals(void);
int glow_interrupted(void);
/* The SHA-256 of a file as 64 lowercase hex digits (and a NUL) in hex:
 * GLOW_OK, or GLOW_EDATA (cannot read) / GLOW_ENOMEM with a message. */
int glow_sha256_file(const char *path, char hex[65], char *err, size_t errlen);
/* Output folders. glow_probe_dir: whether a file can be created in dir (a
 * mkstemp name, removed at once). glow_write_file: len bytes to path
 * atomically (a mkstemp file in the same folder, fsync, rename: a symlink
 * at path is replaced, not written through). Both GLOW_OK, or GLOW_EDATA /
 * GLOW_ENOMEM with a message. glow_lock_dir: an exclusive flock on
 * dir/.glow-lock (opened with O_NOFOLLOW; the holder's pid written in it):
 * the descriptor, to keep open while the folder is in use (the lock ends
 * with the process), or -1 with *holder the pid holding it (0 if unknown)
 * and err "locked", or another message. */
int glow_probe_dir(const char *dir, char *err, size_t errlen);
int glow_write_file(const char *path, const char *bytes, size_t len, char *err, size_t errlen);
int glow_lock_dir(const char *dir, long *holder, char *err, size_t errlen);
/* The tasks of other processes that are runnable right now: the kernel's
 * procs_running (/proc/stat, all CPUs) minus this process's own threads in
 * state R. -1 when /proc cannot tell. */
int glow_others_running(void);
/* The time this process's threads have spent runnable but waiting for a CPU,
 * summed over them (ns, since each started): 0, or -1 when /proc cannot tell. */
int glow_own_wait_ns(long long *wait_ns);
/* ---------------------------------------------------------------- end process */

/* ---------------------------------------------------------------- data (data.c) */
/* Loaders fill a glow_dataset and return GLOW_OK, or GLOW_EDATA (a missing,
 * unreadable, corrupt or wrongly shaped file) / GLOW_ENOMEM with a message
 * naming the file and the problem in err[errlen]. On failure the dataset is
 * left empty (zeroed) and nothing is held. */
#define GLOW_EDATA (-20)
typedef struct {
  uint8_t *x;         /* {n, h, w, c} pixels, NHWC (malloc'd, or inside map) */
  int *y;             /* {n} 0-based labels, or NULL when unlabelled */
  int64_t n;          /* number of images */
  int h, w, c;        /* one stored image: h x w, c = 1 (gray) or 3 (RGB) */
  int classes;        /* number of classes, 0 when unlabelled */
  char **class_names; /* {classes} or NULL */
  int oh, ow;         /* the size of a batch's images (a window of the stored
                         ones, see glow_dataset_batch_aug); 0: h, w */
  int64_t skipped;    /* files skipped while loading (glow_load_images) */
  char **paths;       /* {n} the file each image came from (glow_load_images), or NULL */
  /* a packed file (glow_open_pack): x is NULL and batches copy the images
     out through the kernel, so a file that shrinks under them is an error,
     not SIGBUS */
  char *pack;         /* its path, or NULL when the images are in memory */
  int fd;             /* its descriptor (O_RDONLY), open while pack is set */
  uint64_t data_off;  /* where its pixels start */
  uint64_t pack_len;  /* its length in bytes when opened */
  int64_t pack_mtime; /* its modification time then, in nanoseconds */
  void *map;          /* its read-only mapping (pack_len bytes), or NULL; read
                         only through process_vm_readv, never touched */
  size_t touched;     /* bytes of the mapping read since its pages were dropped */
} glow_dataset;
void glow_dataset_free(glow_dataset *ds); /* frees (or closes) and zeroes; idempotent */
/* gzipped (or plain) IDX pair: images magic 0x00000803 {n, rows, cols},
 * labels magic 0x00000801 {n}; -> x {n, rows, cols, 1}, y {n},
 * classes = max label + 1 */
int glow_load_idx(const char *images_path, const char *labels_path, glow_dataset *ds, char *err,
                  size_t errlen);
/* CIFAR-10 binary batches: records of 1 label byte (0..9) + 3072 bytes
 * channel-planar R, G, B 32x32, in file order -> x {n, 32, 32, 3}, y {n} */
int glow_load_cifar10(const char *const *paths, int npaths, glow_dataset *ds, char *err,
                      size_t errlen);
/* Image folders. The folder is walked recursively (hidden entries skipped,
 * symbolic links followed, a folder met twice walked once), files named
 * .png, .jpg or .jpeg (any case) decoded by their signature; each real file
 * (device, inode) is taken once, under its first name that is not a
 * symbolic link. When the top level holds subfolders and no image file, each
 * top-level subfolder (sorted by name) is a class: labels 0..k-1,
 * class_names the folder names, the files of a class sorted by path;
 * otherwise all files sorted by path, y NULL. Every image is converted to c
 * channels and fit (glow_fit) to h x w. */
typedef struct {
  int h, w;   /* the stored size; 0, 0: the first readable image's */
  int c;      /* 1 or 3; 0: the first readable image's */
  int strict; /* 1: the first unreadable file is an error; 0: it is skipped */
  uint8_t bg[3]; /* RGB: the colour transparent pixels are composited over
                    (glow_png_read) */
  int64_t max_pixels; /* an image whose header says more is skipped (an error
                         when strict), read no further; <= 0: GLOW_MAX_PIXELS */
} glow_image_opts;
/* the files left out of a folder, each with a kind and a reason:
 * GLOW_SKIP_FORMAT a file of another image format by its extension (.gif,
 * .webp, .tiff, .bmp, .svg, ...; never opened), reason its extension in
 * lower case as listed; GLOW_SKIP_DUPLICATE a second name of a file already
 * taken, reason the name taken; GLOW_SKIP_CORRUPT an image file that could
 * not be read (strict = 0), in path order, reason the reader's message.
 * total: the image files found (each real file once) */
enum { GLOW_SKIP_CORRUPT = 0, GLOW_SKIP_FORMAT = 1, GLOW_SKIP_DUPLICATE = 2 };
typedef struct {
  char **path, **reason; /* {n} */
  int *kind;             /* {n} GLOW_SKIP_* */
  int64_t n, cap, total;
} glow_skips;
void glow_skips_free(glow_skips *s); /* frees and zeroes; idempotent */
/* Decodes in parallel (OpenMP over files) into preallocated slots, then
 * compacts the skipped ones away. sk may be NULL. */
int glow_load_images(const char *dir, const glow_image_opts *o, glow_dataset *ds, glow_skips *sk,
                     char *err, size_t errlen);
/* Packed files (docs/FORMAT.md, "Packed image sets"): the images of a folder
 * or of a dataset written one at a time (bounded memory) to a temporary file
 * beside path, renamed into place when complete. limit > 0: at most limit
 * images. *written: the images in the file. */
int glow_pack_images(const char *dir, const glow_image_opts *o, int64_t limit, const char *path,
                     glow_skips *sk, int64_t *written, char *err, size_t errlen);
/* src's stored images, converted to c channels and fit to h x w (0: src's),
 * repeat times (copy r = 0..repeat-1 of every image in turn; with flip, the
 * odd copies mirrored left-right), at most limit (> 0) images; names
 * {src->classes}: the class names to write (NULL: src's, else "0", "1", ...) */
int glow_pack_dataset(glow_dataset *src, char *const *names, int h, int w, int c, int repeat,
                      int flip, int64_t limit, const char *path, int64_t *written, char *err,
                      size_t errlen);
/* open a packed file: ds->pack, fd, data_off, pack_len and pack_mtime are
 * set, and ds->x stays NULL. Images smaller than a page (4096 bytes) get a
 * mapping (ds->map) that batches copy out of with process_vm_readv; larger
 * ones, or where that is refused, are read with pread (GLOW_PACK_READ=pread
 * or =map in the environment chooses). ds->y is a copy of the labels. Every
 * field is checked against the file's length, and the data offset against
 * what the header can need (the fixed part, the class names at their
 * longest, 4 bytes a label, the alignment) before anything is allocated
 * from it. */
int glow_open_pack(const char *path, glow_dataset *ds, char *err, size_t errlen);
/* after batches have read more than GLOW_DROP_BYTES of a pack's mapping, its
 * pages are dropped (madvise MADV_DONTNEED) so the resident set stays bounded */
#define GLOW_DROP_BYTES ((size_t)64 << 20)
/* Stale temporary files of packs: the entries path.tmp.PID.XXXXXX (the
 * pack writer's template) beside path that are regular files of this user,
 * whose process PID is gone (kill(PID, 0) fails with ESRCH) and whose lock
 * nobody holds (a writer holds a flock on its file), are removed; each one
 * is recorded in removed (path, and the reason "left by process PID, which
 * is gone"). A folder that does not exist holds none. GLOW_OK, or
 * GLOW_EDATA / GLOW_ENOMEM with a message (the folder cannot be read). */
int glow_pack_remove_stale(const char *path, glow_skips *removed, char *err, size_t errlen);
/* a 64-bit hash of (seed, epoch, index): the seed of image index's noise
 * (index 1-based) and, with index 0, of the epoch's shuffle */
uint64_t glow_data_hash(uint64_t seed, uint64_t epoch, uint64_t index);
/* perm {n}: a permutation of 0..n-1 (Fisher-Yates) that depends on (seed, epoch) only */
void glow_permutation(int64_t *perm, int64_t n, uint64_t seed, uint64_t epoch);
/* x {d} uint8 -> out {d}: xq = x >> (8 - n_bits); out = (xq + u) / 2^n_bits - 0.5,
 * u ~ U[0, 1) drawn from r in element order, or u = 0.5 when r is NULL */
void glow_preprocess(const uint8_t *x, float *out, size_t d, int n_bits, glow_rng *r);
/* images idx {b} (0-based, < ds->n) -> x {b, h, w, c} preprocessed, with image
 * i's noise from an rng seeded by glow_data_hash(seed, epoch, i + 1) (noise 0:
 * u = 0.5); y {b} gets the labels when both y and ds->y are non-NULL.
 * GLOW_OK; for a pack, GLOW_EDATA when its file cannot be read or changed
 * since it was opened ("PATH: changed while in use (now N bytes, was M)"),
 * or GLOW_ENOMEM, with the message in err */
int glow_dataset_batch(glow_dataset *ds, const int64_t *idx, int64_t b, int n_bits,
                       uint64_t seed, uint64_t epoch, int noise, float *x, int *y, char *err,
                       size_t errlen);
/* the seed of image index's crop offset and flip in an epoch (index 1-based):
 * a stream apart from the noise's glow_data_hash */
uint64_t glow_data_aug_hash(uint64_t seed, uint64_t epoch, uint64_t index);
/* the window of stored image i that a batch takes: oh x ow at (*y0, *x0),
 * mirrored when *flipped. crop_random 0: the centre ((h - oh) / 2, (w - ow) / 2);
 * 1: a = glow_data_aug_hash(seed, epoch, i + 1),
 * y0 = ((a >> 32) & 0x7fffffff) % (h - oh + 1),
 * x0 = ((a >> 1) & 0x7fffffff) % (w - ow + 1). flip: *flipped = a & 1 (else 0) */
void glow_dataset_window(const glow_dataset *ds, int64_t i, uint64_t seed, uint64_t epoch,
                         int flip, int crop_random, int *y0, int *x0, int *flipped);
/* x {b, oh, ow, c}: each image's window (glow_dataset_window), then
 * preprocessed as glow_dataset_batch does (the same noise, in the window's
 * element order); with flip 0, crop_random 0 and oh, ow = h, w the result is
 * glow_dataset_batch's bit for bit. Returns what glow_dataset_batch does. */
int glow_dataset_batch_aug(glow_dataset *ds, const int64_t *idx, int64_t b, int n_bits,
                           uint64_t seed, uint64_t epoch, int noise, int flip, int crop_random,
                           float *x, int *y, char *err, size_t errlen);
/* ---------------------------------------------------------------- end data */

/* ---------------------------------------------------------------- image (image.c) */
/* PNG through libpng. Return GLOW_OK, GLOW_EDATA or GLOW_ENOMEM with a
 * message naming the file in err[errlen]; nothing is held after a failure. */
/* *pixels {h, w, c} uint8, malloc'd (the caller free()s it); c = 1 for gray,
 * 3 for color: palettes expand to RGB, 16-bit scales to 8, 1/2/4-bit gray
 * expands to 8; alpha (an alpha channel or tRNS) is composited over bg {3}
 * (RGB; NULL: white), v = (a v + (255 - a) bg + 127) / 255, a gray image over
 * bg's luma (299 R + 587 G + 114 B + 500) / 1000 */
int glow_png_read(const char *path, const uint8_t *bg, uint8_t **pixels, int *h, int *w, int *c,
                  char *err, size_t errlen);
/* pixels {h, w, c}, c 1 or 3: written to a temporary file beside path, then
 * renamed into place */
int glow_png_write(const char *path, const uint8_t *pixels, int h, int w, int c, char *err,
                   size_t errlen);
/* JPEG through libjpeg(-turbo), the same contract: c = 1 (gray) or 3 (RGB;
 * CMYK and YCCK converted); a warning about corrupt data (premature end of
 * file, bad Huffman code, ...) is GLOW_EDATA with libjpeg's message; images
 * above 2^28 pixels are refused */
int glow_jpeg_read(const char *path, uint8_t **pixels, int *h, int *w, int *c, char *err,
                   size_t errlen);
/* pixels {h, w, c} (c 1 or 3) at quality 1..100 (100: no chroma
 * subsampling), written to a temporary file beside path, then renamed into place */
int glow_jpeg_write(const char *path, const uint8_t *pixels, int h, int w, int c, int quality,
                    char *err, size_t errlen);
/* PNG or JPEG, chosen by the file's first bytes (not its name); bg as in
 * glow_png_read (a JPEG has no alpha) */
int glow_image_read(const char *path, const uint8_t *bg, uint8_t **pixels, int *h, int *w, int *c,
                    char *err, size_t errlen);
/* Decoding for image folders: a file (PNG or JPEG by its first bytes)
 * converted and fit as it is decoded, never held whole where that can be
 * avoided: a PNG's rows (png_read_row; an interlaced PNG is held whole, its
 * passes fill every row in turn) and a JPEG's scanlines go through a
 * glow_fitter into the target. A JPEG whose target is at least 2, 4 or 8
 * times smaller each way is decoded that much smaller by libjpeg's DCT
 * scaling first. An image whose header says more than max_pixels is refused
 * before anything is allocated; a multi-scan (progressive) JPEG of more
 * than max_scans scans is refused as libjpeg reaches that scan. With a gate,
 * the decode's working memory (estimated from the header: libjpeg's
 * coefficients of a multi-scan file, 2 bytes per sample; an interlaced
 * PNG's pixels; rows, the fitter, the result when allocated here) is
 * reserved before it is allocated (glow_decode_gate). */
#define GLOW_MAX_PIXELS ((int64_t)89478485) /* Pillow's MAX_IMAGE_PIXELS */
#define GLOW_JPEG_MAX_SCANS 100             /* libjpeg's own encoder writes at most 10 */
#define GLOW_DECODE_BUDGET ((size_t)256 << 20)
/* decodes running at once hold at most budget bytes of working memory
 * together; one that needs more runs alone, and those after it wait for it.
 * new: NULL when out of memory. */
typedef struct glow_decode_gate glow_decode_gate;
glow_decode_gate *glow_decode_gate_new(size_t budget);
void glow_decode_gate_free(glow_decode_gate *g); /* NULL ok */
typedef struct {
  const uint8_t *bg;      /* {3} RGB under transparent pixels (glow_png_read); NULL: white */
  int64_t max_pixels;     /* <= 0: GLOW_MAX_PIXELS */
  int max_scans;          /* <= 0: GLOW_JPEG_MAX_SCANS */
  const char *limit_name; /* named in the message of an image over max_pixels, or NULL */
  glow_decode_gate *gate; /* or NULL */
} glow_decode_opts;
/* path decoded, converted to dc channels (0: the file's) and fit
 * (glow_fit) to dh x dw (0, 0: the file's size): into dst {dh, dw, dc} when
 * dst is given (dh and dc then given), else into a new *pixels (the caller
 * free()s it); h, w, c (each may be NULL) get the result's shape. GLOW_OK,
 * or GLOW_EDATA (unreadable, corrupt, over a limit) / GLOW_ENOMEM (this
 * file's memory could not be had) with a message naming the file. */
int glow_image_decode(const char *path, const glow_decode_opts *o, int dh, int dw, int dc,
                      uint8_t *dst, uint8_t **pixels, int *h, int *w, int *c, char *err,
                      size_t errlen);
/* A synthetic image for specs and benchmarks, written row by row (no
 * image-sized buffer, so a 20000x20000 PNG costs one row): pattern
 * GLOW_SYNTH_ZERO (all 0; a PNG compressed about 1000:1), _SMOOTH (long
 * sines per channel) or _PHOTO (smooth plus seeded noise); a PNG (layout 1:
 * Adam7 interlaced) or a JPEG at quality (layout 1: progressive, libjpeg's
 * 10 or 6 scans). */
enum { GLOW_SYNTH_ZERO = 0, GLOW_SYNTH_SMOOTH = 1, GLOW_SYNTH_PHOTO = 2 };
int glow_image_synth(const char *path, int jpeg, int h, int w, int c, int pattern, int quality,
                     int layout, uint64_t seed, char *err, size_t errlen);
/* the message of a file that cannot be opened (errno e) into err: a
 * symbolic link that leads nowhere is named as one ("a dangling symbolic
 * link (to T, which does not exist)", "a symbolic link in a loop of links
 * (to T)"); returns GLOW_EDATA */
int glow_open_failed(const char *path, int e, char *err, size_t errlen);
/* the grid of n images h x w: min(cols, n) per row, padding pixels between */
void glow_grid_size(int n, int h, int w, int cols, int padding, int *gh, int *gw);
/* x {n, h, w, c} in [-0.5, 0.5] -> out {gh, gw, c}: v = floor((x + 0.5) * 256)
 * clipped to [0, 255] (NaN -> 0), background 0 */
void glow_image_grid(const float *x, int n, int h, int w, int c, int cols, int padding,
                     uint8_t *out);
/* resize.c: uint8 HWC images. Channels: gray -> RGB replicates, RGB -> gray
 * is (299 R + 587 G + 114 B + 500) / 1000; src and dst may be the same buffer
 * only when cout <= cin */
void glow_convert_channels(const uint8_t *src, int cin, uint8_t *dst, int cout, size_t pixels);
/* the region {rh, rw} at (y0, x0) of src {sh, sw, c} -> dst {dh, dw, c}:
 * per axis, AREA (box coverage) when it shrinks, BILINEAR (half-pixel
 * centres, edges clamped) when it grows, the identity when equal; rounded
 * half up. Returns GLOW_OK or GLOW_ENOMEM. */
int glow_resize(const uint8_t *src, int sh, int sw, int c, int y0, int x0, int rh, int rw,
                uint8_t *dst, int dh, int dw);
/* the same from the definitions, a full 2-D sum per output value (tests) */
void glow_resize_naive(const uint8_t *src, int sh, int sw, int c, int y0, int x0, int rh, int rw,
                       uint8_t *dst, int dh, int dw);
/* the centre region of {sh, sw} with dh x dw's aspect ratio (whole source
 * pixels; the longer side cropped), which glow_fit scales to cover dh x dw */
void glow_fit_region(int sh, int sw, int dh, int dw, int *y0, int *x0, int *rh, int *rw);
int glow_fit(const uint8_t *src, int sh, int sw, int c, uint8_t *dst, int dh, int dw);
/* glow_resize fed one source row at a time (a decoder's rows, in order, all
 * sh of them, each {sw, c}; rows outside the region are passed over), the
 * same values bit for bit; it holds the weight tables and a few float rows
 * of the output's width, never the source image. glow_fitter_new returns
 * NULL when out of memory; glow_fitter_bytes is what it allocates, at most. */
typedef struct glow_fitter glow_fitter;
glow_fitter *glow_fitter_new(int sh, int sw, int c, int y0, int x0, int rh, int rw, uint8_t *dst,
                             int dh, int dw);
void glow_fitter_push(glow_fitter *f, const uint8_t *row);
void glow_fitter_free(glow_fitter *f); /* NULL ok */
size_t glow_fitter_bytes(int rh, int rw, int c, int dh, int dw);
/* ---------------------------------------------------------------- end image */

/* ---------------------------------------------------------------- checkpoint (checkpoint.c) */
/* The file layer of safetensors checkpoints. A file is: an 8-byte
 * little-endian unsigned header length N; N bytes of UTF-8 JSON (built and
 * checked by the caller, here padded with spaces so the data starts at a
 * multiple of 8); then the data buffer, the tensors' float32 values in
 * little-endian byte order. "Offsets" below count from the start of that
 * buffer, i.e. file position 8 + N. Every function returns GLOW_OK or a
 * negative code and writes a message naming the file into err[errlen] (NUL
 * terminated, truncated to fit); none exits, and none holds a file or memory
 * after it returns. */
#define GLOW_ECKPT_IO (-10)     /* cannot open, read, write, sync or rename a file */
#define GLOW_ECKPT_FORMAT (-11) /* a file too short, or a header size beyond it or absurd */
#define GLOW_CHECKPOINT_MAX_HEADER ((uint64_t)100 << 20) /* 100 MB: larger is corrupt */

/* The temporary file a write goes through: path ".tmp-" pid, in path's own
 * directory (so the final rename stays on one file system). Writes it into
 * out[len] and returns its length (>= len: out was too small). */
size_t glow_checkpoint_temp_path(const char *path, char *out, size_t len);

/* Write header[header_len] (JSON, no length prefix) and count tensors, tensor
 * i being numel[i] floats at data[i] (written in order, back to back), to
 * path atomically: into the temporary file, flushed and fsync'ed, then
 * renamed over path (then path's directory is fsync'ed, best effort). On any
 * failure the temporary file is removed and an existing file at path is left
 * as it was. data[i] may be NULL when numel[i] is 0. */
int glow_checkpoint_write(const char *path, const char *header, size_t header_len, int count,
                          const float *const *data, const size_t *numel, char *err,
                          size_t errlen);

/* Open path and check its frame: at least 8 bytes, a header length N with
 * N <= GLOW_CHECKPOINT_MAX_HEADER and 8 + N <= the file size. Gives N and
 * the file size in bytes. */
int glow_checkpoint_probe(const char *path, uint64_t *header_len, uint64_t *file_size, char *err,
                          size_t errlen);

/* Read the header's header_len bytes (as given by glow_checkpoint_probe) into
 * dst[header_len]; fails if the file's size is no longer file_size. */
int glow_checkpoint_read_header(const char *path, uint64_t header_len, uint64_t file_size,
                                char *dst, char *err, size_t errlen);

/* Read count tensors: tensor i is numel[i] floats at buffer offset begin[i]
 * into dst[i] (host byte order). Checks, before reading anything, that the
 * file's size is still file_size and that every [begin, begin + 4 numel)
 * lies inside the buffer of file_size - 8 - header_len bytes. */
int glow_checkpoint_read_data(const char *path, uint64_t header_len, uint64_t file_size,
                              int count, const uint64_t *begin, const size_t *numel,
                              float *const *dst, char *err, size_t errlen);
/* ---------------------------------------------------------------- end checkpoint */

/* ---------------------------------------------------------------- linalg (linalg.c) */
/* Batched matrix products through glow_sgemm. Operand i of a batch is matrix
 * ai[i] of a (each m*k floats: {m, k}, or {k, m} stored when ta) and matrix
 * bi[i] of b (each k*n floats: {k, n}, or {n, k} when tb); ai, bi NULL mean
 * i. Its product goes to matrix ci[i] of c (each {m, n}; ci NULL means i, and
 * then nc = nb): for t < nc, c[t] = the sum of op(a[ai[i]]) op(b[bi[i]]) over
 * the i with ci[i] = t, added in the order of i (0 where there is none; c is
 * overwritten). Several products into one matrix are how a broadcast operand's
 * gradient is reduced. Small matrices run one per OpenMP thread with a
 * single-threaded sgemm; large ones one after another with OpenBLAS's threads.
 * Returns GLOW_OK or GLOW_ENOMEM. */
int glow_matmul(const float *a, const int64_t *ai, int ta, const float *b, const int64_t *bi,
                int tb, float *c, const int64_t *ci, int64_t nb, int64_t nc, int m, int n, int k);

/* 2x resampling of NHWC images; h, w, c are the SMALL image's: x {n, h, w, c},
 * the large one {n, 2h, 2w, c}. */
/* y {n, h, w, c} = the mean of each 2x2 block of x {n, 2h, 2w, c} */
void glow_avg_pool2_forward(const float *x, float *y, int n, int h, int w, int c);
/* its adjoint: dx {n, 2h, 2w, c} = dy {n, h, w, c} / 4 in each block (overwritten) */
void glow_avg_pool2_backward(const float *dy, float *dx, int n, int h, int w, int c);
#define GLOW_UPSAMPLE_NEAREST 0
/* PyTorch's Upsample(scale_factor=2, mode="bilinear", align_corners=False): along
 * each axis y[2i] = x[i-1]/4 + 3x[i]/4, y[2i+1] = 3x[i]/4 + x[i+1]/4, with the
 * index clamped at the edges */
#define GLOW_UPSAMPLE_BILINEAR 1
/* y {n, 2h, 2w, c} from x {n, h, w, c} */
void glow_upsample2_forward(const float *x, float *y, int n, int h, int w, int c, int mode);
/* the exact adjoint: dx {n, h, w, c} (overwritten) from dy {n, 2h, 2w, c} */
void glow_upsample2_backward(const float *dy, float *dx, int n, int h, int w, int c, int mode);
/* ---------------------------------------------------------------- end linalg */

/* ---------------------------------------------------------------- ops (ops.c) */
/* General tensor maths; lops.c works out shapes and strides. A stride of 0
 * repeats an operand along a broadcast dimension. nd <= GLOW_MAXDIM. */
#define GLOW_MAXDIM 8
enum {
  GLOW_OP_EXP = 1, GLOW_OP_LOG, GLOW_OP_LOG1P, GLOW_OP_EXPM1, GLOW_OP_SQRT, GLOW_OP_ABS, GLOW_OP_NEG,
  GLOW_OP_SIGMOID, GLOW_OP_LOG_SIGMOID, GLOW_OP_TANH, GLOW_OP_SOFTPLUS, GLOW_OP_RELU, GLOW_OP_ELU,
  GLOW_OP_CLAMP, GLOW_OP_POW, GLOW_OP_SCALE, GLOW_OP_FLOOR, GLOW_OP_CEIL, GLOW_OP_ROUND, GLOW_OP_SIGN,
  GLOW_OP_ADD = 32, GLOW_OP_SUB, GLOW_OP_MUL, GLOW_OP_DIV, GLOW_OP_MAX, GLOW_OP_MIN, GLOW_OP_SUMEXP,
  GLOW_OP_LT, GLOW_OP_LE, GLOW_OP_GT, GLOW_OP_GE, GLOW_OP_EQ, GLOW_OP_NE
};
/* The size (elements) from which ops.c runs a loop of each class on threads:
 * cheap elementwise ops and copies (row copies of index_select and index_add
 * included), transcendental unary ops, reductions, gather and scatter_add
 * (measured by bench/par.lua; the values and figures in ops.c) */
enum { GLOW_PAR_CHEAP, GLOW_PAR_MATH, GLOW_PAR_REDUCE, GLOW_PAR_GATHER };
int64_t glow_par_min(int cls);
/* y[i] = f(x[i]): x, y {n}; a, b: elu's alpha, clamp's bounds, pow's exponent, scale's
 * factor. maximum, minimum and max propagate NaN. The transcendental functions are
 * vmath.h's vectorized kernels (their ulp bounds beside each); ROUND rounds half to
 * even (rintf); SIGN gives -1, 1, or x itself for ±0 and NaN. */
void glow_unary(int op, const float *x, float *y, int64_t n, float a, float b);
/* the same through libm per element, on one thread: the reference of the tests */
void glow_unary_naive(int op, const float *x, float *y, int64_t n, float a, float b);
/* y {shape} = a op b, a and b read with strides sa, sb (nd each); the comparisons
 * (GLOW_OP_LT .. GLOW_OP_NE) give 1 or 0, NaN comparing false except in NE */
void glow_binary(int op, const float *a, const int64_t *sa, const float *b, const int64_t *sb, float *y,
                 int nd, const int64_t *shape);
/* y {shape} = m != 0 ? a : b, each read with its strides */
void glow_where(const float *m, const int64_t *sm, const float *a, const int64_t *sa, const float *b,
                const int64_t *sb, float *y, int nd, const int64_t *shape);
/* y {shape} = x read with strides sx (a permutation or a broadcast) */
void glow_strided_copy(const float *x, const int64_t *sx, float *y, int nd, const int64_t *shape);
/* x {outer, red, inner} -> y {outer, inner}: op GLOW_OP_ADD (sum), GLOW_OP_MAX, or
 * GLOW_OP_SUMEXP (sum of exp(x - shift), shift {outer, inner}; NULL for the others).
 * The result depends on the sizes only, not on the thread count. */
void glow_reduce(int op, const float *x, const float *shift, float *y, int64_t outer, int64_t red,
                 int64_t inner);
/* y {outer, inner} = log sum_r exp(x {outer, red, inner}), stable; m {outer, inner} is scratch */
void glow_logsumexp(const float *x, float *m, float *y, int64_t outer, int64_t red, int64_t inner);
/* dst[o, doff + r] (=|+=) src[o, soff + r] for r < rows: src {outer, srows, inner},
 * dst {outer, drows, inner}; add = 1 adds */
void glow_rows(const float *src, int64_t srows, int64_t soff, float *dst, int64_t drows, int64_t doff,
               int64_t rows, int64_t outer, int64_t inner, int add);
/* add = 0: y[o, j] = x[o, idx[j]]; add = 1: y[o, idx[j]] += x[o, j]. x {outer, xrows
 * or nidx, inner}, idx 0-based */
void glow_index_rows(const float *x, int64_t xrows, float *y, const int64_t *idx, int64_t nidx,
                     int64_t outer, int64_t inner, int add);
/* scatter = 0: y[i] = x[i with i_dim replaced by idx[i]]; scatter = 1:
 * x[...] += y[i]; scatter = 2: x[...] = y[i]. x {xshape}, idx and y {ishape}, 0-based indices */
void glow_gather(float *x, const int64_t *xshape, const int64_t *idx, const int64_t *ishape, int nd, int dim,
                 float *y, int scatter);
/* y {n, h, w, c}: 1 where (i + j + parity) is even (i, j 0-based row and column), else 0 */
void glow_checkerboard(float *y, int64_t n, int64_t h, int64_t w, int64_t c, int parity);
/* y {n, k}: one_hot of labels in [0, k) */
void glow_one_hot(const int *labels, int64_t n, int64_t k, float *y);
/* ---------------------------------------------------------------- end ops */

/* ---------------------------------------------------------------- fused elementwise programs (fuse.c) */
/* A program: registers 0 .. nin-1 are its inputs, register nin + k the value
 * of instruction k; the last instruction's is the output. An instruction
 * applies op (a unary GLOW_OP_* from EXP to POW except SCALE, or ADD .. MIN)
 * to registers a and b (b = -1 for a unary op); p is elu's alpha, clamp's
 * lower bound or pow's exponent, q clamp's upper bound or pow's exponent less
 * one. An input is read with strides st over the output's dims (0 along a
 * broadcast dim); full says it is laid out as the output (read in place).
 * The output has shape {nd dims}; nin + nins <= GLOW_EW_MAXREG. */
#define GLOW_EW_MAXREG 64
typedef struct {
  int op, a, b;
  float p, q;
} glow_ew_ins;
typedef struct {
  const float *p;
  int64_t st[GLOW_MAXDIM];
  int full;
} glow_ew_in;
typedef struct {
  const glow_ew_ins *code;
  int nins;
  const glow_ew_in *in;
  int nin;
  int nd;
  int64_t shape[GLOW_MAXDIM];
} glow_ew_prog;
/* y {shape} = the program's output, equal to the ops run one by one. GLOW_OK or GLOW_ENOMEM. */
int glow_ew_forward(const glow_ew_prog *P, float *y);
/* Given g, the gradient of the output: for each input i with grad[i] not
 * NULL, its gradient: with reduce[i], summed over the broadcast dims into
 * in_numel[i] floats (the input's own layout), else the output's size. The
 * result does not depend on the thread count. GLOW_OK or GLOW_ENOMEM. */
int glow_ew_backward(const glow_ew_prog *P, const float *g, float **grad, const int *reduce,
                     const int64_t *in_numel);
/* the first register (0-based) the output does not depend on, or -1 when
 * every input and instruction leads to it, as the kernels require (each
 * adjoint is written by the instructions that read it) */
int glow_ew_unused(const glow_ew_ins *code, int nins, int nin);
/* whether an input of in_numel elements may reduce in glow_ew_backward
 * (its partial sums bounded), else it takes a gradient of the output's size */
int glow_ew_partial_ok(const glow_ew_prog *P, int64_t in_numel);
/* ---------------------------------------------------------------- end fused */

/* ---------------------------------------------------------------- plans (plan.c) */
/* A network that treats each image on its own, as nodes over slots: slot 0
 * the input, each node writing one slot; every slot an NHWC image dims[s] =
 * {h, w, c} per batch entry. A convolution node reads slot x with parameters
 * w {kh, kw, cin, cout} and b (-1: none); an elementwise node runs a fused
 * program (glow_ew_ins, registers as there) over inputs that are slots,
 * parameters (broadcast over the batch: nd <= 4 dims, the batch dim 1 or
 * absent) or numbers. Run as the default network's kernel: the threads split
 * the batch, a few images at a time through all nodes in cache. */
enum { GLOW_PLAN_CONV = 1, GLOW_PLAN_EW = 2 };
enum { GLOW_PLAN_SLOT = 1, GLOW_PLAN_PARAM = 2, GLOW_PLAN_NUMBER = 3 };
typedef struct {
  const float *data;
  float *grad; /* NULL: no gradient (a constant) */
  int64_t numel;
  int nd;
  int64_t shape[4];
} glow_plan_param;
typedef struct {
  int kind, out;
  int x, w, b, kh, kw, pad_h, pad_w, dil; /* a convolution */
  const glow_ew_ins *code;                /* an elementwise program */
  int nins, nin;
  const int *in_kind, *in_idx;
  const float *in_num;
} glow_plan_node;
typedef struct {
  int nslots, nnodes, nparams, out; /* out: the slot of the network's output */
  const int (*dims)[3];
  const glow_plan_node *nodes;
  const glow_plan_param *params;
} glow_plan;
/* y {n, dims[out]} from x {n, dims[0]}; store (NULL, or per slot NULL or a
 * buffer {n, dims[s]}) keeps those slots for backward. GLOW_OK or GLOW_ENOMEM. */
int glow_plan_forward(const glow_plan *P, const float *x, float *y, float *const *store, int n);
/* dx {n, dims[0]} from dy {n, dims[out]}; each parameter's gradient is added
 * into its grad. stored: forward's store (the other slots recomputed chunk by
 * chunk), or NULL to recompute all. The results depend on the thread count only. GLOW_OK or GLOW_ENOMEM. */
int glow_plan_backward(const glow_plan *P, const float *x, const float *dy, float *dx, float *const *stored,
                       int n);
/* ---------------------------------------------------------------- end plans */

/* ---------------------------------------------------------------- optim (optim.c) */
/* All over flat arrays of n floats: weights w, gradients g and the moments.
 * Weight decay is decoupled: w -= lr * wd * w beside the gradient step. */
double glow_norm2(const float *g, size_t n);                /* sum g^2, in double */
void glow_scale_inplace(float *g, size_t n, float a);       /* g *= a (clipping) */
/* buf (momentum, NULL for plain SGD): buf = momentum buf + g; w -= lr (buf + wd w),
 * or with nesterov w -= lr (g + momentum buf + wd w) */
void glow_sgd_update(float *w, const float *g, float *buf, size_t n, float lr, float momentum,
                     float wd, int nesterov);
/* Adam, step >= 1: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * w -= lr mhat / (sqrt(vhat) + eps) with mhat = m/(1-b1^t), vhat = v/(1-b2^t) */
void glow_adam_update(float *w, const float *g, float *m, float *v, size_t n, float lr, float b1,
                      float b2, float eps, float wd, int64_t step);
/* Adamax: m as Adam; u = max(b2 u, |g|); w -= lr / (1-b1^t) m / (u + eps) */
void glow_adamax_update(float *w, const float *g, float *m, float *u, size_t n, float lr, float b1,
                        float b2, float eps, float wd, int64_t step);
/* ema = decay ema + (1 - decay) w */
void glow_ema_update(float *ema, const float *w, size_t n, float decay);
/* ---------------------------------------------------------------- end optim */

/* ---------------------------------------------------------------- scan (scan.c) */
/* Ops along the middle dim of x {outer, n, inner}; y the same shape. */
/* cumulative sum (prod 0) or product (prod 1); reverse: from the last element */
void glow_cumulative(int prod, int reverse, const float *x, float *y, int64_t outer, int64_t n, int64_t inner);
/* dx = d/dx of sum(g * cumprod(x)), exact when x holds zeros */
void glow_cumprod_backward(const float *x, const float *g, float *dx, int64_t outer, int64_t n, int64_t inner);
/* stable sort (NaN last ascending, first descending, as torch): values y,
 * 1-based source positions idx (NULL: not wanted). GLOW_OK or GLOW_ENOMEM. */
int glow_sort(const float *x, float *y, float *idx, int64_t outer, int64_t n, int64_t inner, int descending);
/* out {outer, nv}: how many of b {outer, nb} (shared: one row {nb} for all)
 * lie below v (right: at most v); b sorted ascending; NaN counts above all */
void glow_searchsorted(const float *b, int64_t nb, int shared, const float *v, float *out, int64_t outer,
                       int64_t nv, int right);
/* softmax (log_out: log-softmax) along n; m, s {outer, inner} scratch */
void glow_softmax(const float *x, float *y, float *m, float *s, int64_t outer, int64_t n, int64_t inner,
                  int log_out);
/* big {bshape}, small {sshape} (nd dims): crop 0 copies small into big at
 * offsets off (padding), crop 1 copies that block of big into small */
void glow_pad(float *big, const int64_t *bshape, float *small, const int64_t *sshape, const int64_t *off, int nd,
              int crop);
/* x, y {batch, r, c}: keep j - i >= k (upper) or j - i <= k (lower), else 0 */
void glow_tri(const float *x, float *y, int64_t batch, int64_t r, int64_t c, int64_t k, int upper);
void glow_range(float *y, int64_t n, double start, double step); /* y[i] = start + i step */
void glow_eye(float *y, int64_t batch, int64_t r, int64_t c);    /* y {batch, r, c} */
/* ---------------------------------------------------------------- end scan */

/* ---------------------------------------------------------------- matrix (matrix.c) */
/* A {batch, n, n}, in double inside (LU with partial pivoting). logabsdet,
 * sign {batch} (a singular matrix: -inf and 0). inverse X {batch, n, n};
 * solve X {batch, n, k} = A^-1 B. GLOW_ESINGULAR (NaN there) if one is singular. */
int glow_batch_slogdet(const float *A, float *logabsdet, float *sign, int64_t batch_n, int64_t n);
int glow_batch_inverse(const float *A, float *X, int64_t batch_n, int64_t n);
int glow_batch_solve(const float *A, const float *B, float *X, int64_t batch_n, int64_t n, int64_t k);
/* ---------------------------------------------------------------- end matrix */

#endif
