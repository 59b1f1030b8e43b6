/*
 * plan.c -- a network that treats each image on its own, written with ops
 * (convolutions and fused elementwise programs), run as net.c runs the
 * default network: the threads split the batch by images, and each takes a
 * few images at a time through every node, the activations in cache-sized
 * buffers; OpenBLAS runs single-threaded inside. glow.autograd builds the
 * plan from the tape of a glow.autograd.Net (lua/glow/autograd.lua, "plans").
 *
 * Slot 0 is the network's input, slot k + 1 node k's output, each an NHWC
 * image {h, w, c} per batch entry. Parameters are read-only tensors; a
 * parameter of an elementwise program broadcasts over the batch (its shape
 * has no batch dim, or 1 there). Backward gives dx and adds each parameter's
 * gradient into its grad, through one copy per thread added in thread order:
 * the results depend on the thread count only. Forward can store the
 * outputs of the convolutions (memory "store"); backward then reads them
 * and recomputes only the elementwise nodes, in cache, as net.c keeps its
 * two hidden activations.
 */
#include "glow.h"

#include <stdlib.h>
#include <string.h>

/* floats of the widest activation of one chunk (as net.c's chunks) */
#define PLAN_CHUNK_FLOATS ((size_t)1 << 16)

static size_t slot_numel(const glow_plan *P, int s) {
  return (size_t)P->dims[s][0] * P->dims[s][1] * P->dims[s][2];
}

static int chunk_images(const glow_plan *P) {
  size_t wide = 1;
  for (int s = 0; s < P->nslots; s++)
    if (slot_numel(P, s) > wide) wide = slot_numel(P, s);
  size_t c = PLAN_CHUNK_FLOATS / wide;
  return c < 1 ? 1 : (int)c;
}

/* no more threads than images */
static int threads_for(int n) {
  int nt = glow_threads();
  return nt < 1 ? 1 : nt > n ? n : nt;
}

static glow_conv_geom conv_geom(const glow_plan *P, const glow_plan_node *nd, int nb) {
  const int *d = P->dims[nd->x];
  glow_conv_geom g = {nb, d[0], d[1], d[2], P->dims[nd->out][2], nd->kh, nd->kw, nd->pad_h, nd->pad_w, nd->dil};
  return g;
}

/* An elementwise node over nb images as a glow_ew_prog: slot inputs read
 * from val (their strides: the batch by their own image size), parameters
 * broadcast, numbers by pointer. */
static void ew_prog(const glow_plan *P, const glow_plan_node *nd, int nb, float *const *val, glow_ew_prog *E,
                    glow_ew_in *in) {
  const int *od = P->dims[nd->out];
  int64_t shape[4] = {nb, od[0], od[1], od[2]};
  E->code = nd->code, E->nins = nd->nins, E->in = in, E->nin = nd->nin, E->nd = 4;
  memcpy(E->shape, shape, sizeof shape);
  for (int i = 0; i < nd->nin; i++) {
    glow_ew_in *e = &in[i];
    memset(e, 0, sizeof *e);
    if (nd->in_kind[i] == GLOW_PLAN_NUMBER) {
      e->p = &nd->in_num[i];
      continue;
    }
    int64_t s4[4];
    if (nd->in_kind[i] == GLOW_PLAN_SLOT) {
      const int *d = P->dims[nd->in_idx[i]];
      e->p = val[nd->in_idx[i]];
      s4[0] = nb, s4[1] = d[0], s4[2] = d[1], s4[3] = d[2];
    } else {
      const glow_plan_param *p = &P->params[nd->in_idx[i]];
      e->p = p->data;
      for (int k = 0; k < 4; k++) s4[k] = k < 4 - p->nd ? 1 : p->shape[k - (4 - p->nd)];
    }
    /* contiguous strides of its own shape, 0 along a dim it broadcasts */
    int64_t st = 1;
    int full = 1;
    for (int k = 3; k >= 0; k--) {
      e->st[k] = s4[k] == 1 && shape[k] != 1 ? 0 : st;
      if (s4[k] != shape[k]) full = 0;
      st *= s4[k];
    }
    e->full = full;
  }
}

/* One thread's buffers. */
typedef struct {
  float **val, **adj; /* per slot: values and adjoints of the current chunk */
  char *set;          /* per slot: its adjoint holds a contribution */
  float *own;         /* the slot buffers this thread allocated */
  float *tmp;         /* one slot-sized scratch per input of the widest node */
  float *pg;          /* this thread's copy of the parameters' gradients */
  float **gbuf;       /* glow_ew_backward's outputs */
  int *reduce;
  int64_t *numel;
} tbuf;

static size_t param_total(const glow_plan *P, size_t *off) {
  size_t o = 0;
  for (int i = 0; i < P->nparams; i++) {
    off[i] = o;
    if (P->params[i].grad) o += (size_t)P->params[i].numel;
  }
  return o;
}

static int max_inputs(const glow_plan *P) {
  int m = 1;
  for (int k = 0; k < P->nnodes; k++)
    if (P->nodes[k].kind == GLOW_PLAN_EW && P->nodes[k].nin > m) m = P->nodes[k].nin;
  return m;
}

static size_t max_param(const glow_plan *P) {
  size_t m = 1;
  for (int i = 0; i < P->nparams; i++)
    if ((size_t)P->params[i].numel > m) m = (size_t)P->params[i].numel;
  return m;
}

static void tbuf_free(tbuf *T) {
  free(T->val);
  free(T->adj);
  free(T->set);
  glow_free(T->own);
  glow_free(T->tmp);
  glow_free(T->pg);
  free(T->gbuf);
  free(T->reduce);
  free(T->numel);
}

/* values (own buffers for slots not stored, except slot 0 and the output),
 * and for backward adjoints, scratch and a zeroed gradient copy of pg floats */
static int tbuf_init(const glow_plan *P, tbuf *T, int chunk, int backward, float *const *store, size_t pg) {
  memset(T, 0, sizeof *T);
  int ns = P->nslots, mi = max_inputs(P);
  T->val = calloc((size_t)ns, sizeof(float *));
  T->adj = calloc((size_t)ns, sizeof(float *));
  T->set = calloc((size_t)ns, 1);
  T->gbuf = calloc((size_t)mi, sizeof(float *));
  T->reduce = calloc((size_t)mi, sizeof(int));
  T->numel = calloc((size_t)mi, sizeof(int64_t));
  if (!T->val || !T->adj || !T->set || !T->gbuf || !T->reduce || !T->numel) return 0;
  size_t total = 0, wide = 1;
  for (int s = 1; s < ns; s++) {
    size_t m = (size_t)chunk * slot_numel(P, s);
    if (!(store && store[s])) total += m;
    if (backward) total += m;
    if (m > wide) wide = m;
  }
  T->own = glow_alloc_uninit(total);
  if (!T->own) return 0;
  float *q = T->own;
  for (int s = 1; s < ns; s++) {
    size_t m = (size_t)chunk * slot_numel(P, s);
    if (!(store && store[s])) T->val[s] = q, q += m;
    if (backward) T->adj[s] = q, q += m;
  }
  if (backward) {
    size_t sz = (size_t)chunk * slot_numel(P, 0);
    if (sz > wide) wide = sz;
    size_t mp = max_param(P);
    T->tmp = glow_alloc_uninit(wide * (size_t)mi + mp * (size_t)mi);
    T->pg = glow_alloc(pg);
    if (!T->tmp || !T->pg) return 0;
  }
  return 1;
}

/* forward of nodes over images b0 .. b0 + nb: val[0] and val[out] set by
 * the caller; in backward the stored slots are read, not computed again,
 * and only the slots some node reads (need) are computed */
static int forward_chunk(const glow_plan *P, tbuf *T, float *const *stored, const char *need, int nb) {
  for (int k = 0; k < P->nnodes; k++) {
    const glow_plan_node *nd = &P->nodes[k];
    if ((stored && stored[nd->out]) || (need && !need[nd->out])) continue;
    int rc;
    if (nd->kind == GLOW_PLAN_CONV) {
      glow_conv_geom g = conv_geom(P, nd, nb);
      const glow_plan_param *w = &P->params[nd->w];
      rc = glow_conv_forward(&g, T->val[nd->x], w->data, nd->b >= 0 ? P->params[nd->b].data : NULL,
                             T->val[nd->out]);
    } else {
      glow_ew_prog E;
      glow_ew_in in[GLOW_EW_MAXREG];
      ew_prog(P, nd, nb, T->val, &E, in);
      rc = glow_ew_forward(&E, T->val[nd->out]);
    }
    if (rc) return rc;
  }
  return GLOW_OK;
}

/* the slot values of images b0 .. b0 + nb: slot 0 from x, stored slots in
 * place, the output into y when given */
static void point_values(const glow_plan *P, tbuf *T, const float *x, float *const *store, float *y, int b0) {
  T->val[0] = (float *)(uintptr_t)(x + (size_t)b0 * slot_numel(P, 0));
  for (int s = 1; s < P->nslots; s++)
    if (store && store[s]) T->val[s] = store[s] + (size_t)b0 * slot_numel(P, s);
  if (y && P->out > 0) T->val[P->out] = y + (size_t)b0 * slot_numel(P, P->out);
}

int glow_plan_forward(const glow_plan *P, const float *x, float *y, float *const *store, int n) {
  if (n <= 0) return GLOW_OK;
  int chunk = chunk_images(P), err = GLOW_OK, nt = threads_for(n);
#pragma omp parallel num_threads(nt)
  {
    int t, tn;
    glow_thread_share(&t, &tn);
    int i0 = (int)((long)n * t / tn), i1 = (int)((long)n * (t + 1) / tn);
    tbuf T;
    memset(&T, 0, sizeof T);
    int rc = tbuf_init(P, &T, chunk, 0, store, 0) ? GLOW_OK : GLOW_ENOMEM;
    for (int b0 = i0; b0 < i1 && !rc; b0 += chunk) {
      int nb = i1 - b0 < chunk ? i1 - b0 : chunk;
      point_values(P, &T, x, store, y, b0);
      rc = forward_chunk(P, &T, NULL, NULL, nb);
      if (!rc && P->out == 0)
        memcpy(y + (size_t)b0 * slot_numel(P, 0), T.val[0], sizeof(float) * nb * slot_numel(P, 0));
    }
    tbuf_free(&T);
    if (rc) {
#pragma omp critical(glow_plan_err)
      err = rc;
    }
  }
  return err;
}

/* adj[s] += g (m floats), or adj[s] = g for its first contribution */
static void add_into(tbuf *T, int s, const float *g, size_t m) {
  if (!T->set[s]) {
    memcpy(T->adj[s], g, sizeof(float) * m);
    T->set[s] = 1;
  } else {
    float *a = T->adj[s];
    for (size_t j = 0; j < m; j++) a[j] += g[j];
  }
}

/* dst (a parameter's layout, read with strides st over the chunk's shape)
 * += g, an output-sized gradient */
static void sum_into(float *dst, const int64_t *st, const int64_t *shape, const float *g) {
  size_t e = 0;
  for (int64_t a = 0; a < shape[0]; a++)
    for (int64_t b = 0; b < shape[1]; b++)
      for (int64_t c = 0; c < shape[2]; c++) {
        float *d = dst + a * st[0] + b * st[1] + c * st[2];
        for (int64_t k = 0; k < shape[3]; k++) d[k * st[3]] += g[e++];
      }
}

static int backward_chunk(const glow_plan *P, tbuf *T, const size_t *poff, size_t wide, int nb) {
  for (int k = P->nnodes - 1; k >= 0; k--) {
    const glow_plan_node *nd = &P->nodes[k];
    if (!T->set[nd->out]) continue; /* nothing flows back through it */
    const float *g = T->adj[nd->out];
    if (nd->kind == GLOW_PLAN_CONV) {
      glow_conv_geom cg = conv_geom(P, nd, nb);
      const glow_plan_param *w = &P->params[nd->w];
      const glow_plan_param *b = nd->b >= 0 ? &P->params[nd->b] : NULL;
      int s = nd->x, direct = !T->set[s];
      float *dx = direct ? T->adj[s] : T->tmp;
      int rc = glow_conv_backward(&cg, T->val[s], w->data, g, dx, w->grad ? T->pg + poff[nd->w] : NULL,
                                  b && b->grad ? T->pg + poff[nd->b] : NULL);
      if (rc) return rc;
      if (direct)
        T->set[s] = 1;
      else
        add_into(T, s, T->tmp, (size_t)nb * slot_numel(P, s));
      continue;
    }
    glow_ew_prog E;
    glow_ew_in in[GLOW_EW_MAXREG];
    ew_prog(P, nd, nb, T->val, &E, in);
    float *scratch = T->tmp, *pscratch = T->tmp + wide * (size_t)max_inputs(P);
    size_t mp = max_param(P);
    for (int i = 0; i < nd->nin; i++) {
      T->gbuf[i] = NULL, T->reduce[i] = 0, T->numel[i] = 1;
      int kind = nd->in_kind[i], idx = nd->in_idx[i];
      if (kind == GLOW_PLAN_SLOT) {
        T->numel[i] = (int64_t)nb * (int64_t)slot_numel(P, idx);
        T->reduce[i] = !in[i].full;
        /* the first contribution of a full input goes straight into its adjoint */
        T->gbuf[i] = in[i].full && !T->set[idx] ? T->adj[idx] : scratch + wide * (size_t)i;
      } else if (kind == GLOW_PLAN_PARAM && P->params[idx].grad) {
        T->numel[i] = P->params[idx].numel;
        T->reduce[i] = glow_ew_partial_ok(&E, T->numel[i]);
        /* a large one (a per-pixel parameter of a large image): the
         * output-sized gradient, summed below */
        T->gbuf[i] = T->reduce[i] ? pscratch + mp * (size_t)i : scratch + wide * (size_t)i;
      }
    }
    int rc = glow_ew_backward(&E, g, T->gbuf, T->reduce, T->numel);
    if (rc) return rc;
    for (int i = 0; i < nd->nin; i++) {
      if (!T->gbuf[i]) continue;
      int idx = nd->in_idx[i];
      if (nd->in_kind[i] == GLOW_PLAN_SLOT) {
        if (T->gbuf[i] == T->adj[idx])
          T->set[idx] = 1;
        else
          add_into(T, idx, T->gbuf[i], (size_t)T->numel[i]);
      } else if (T->reduce[i]) {
        float *dst = T->pg + poff[idx];
        for (int64_t j = 0; j < T->numel[i]; j++) dst[j] += T->gbuf[i][j];
      } else {
        sum_into(T->pg + poff[idx], in[i].st, E.shape, T->gbuf[i]);
      }
    }
  }
  return GLOW_OK;
}

int glow_plan_backward(const glow_plan *P, const float *x, const float *dy, float *dx, float *const *stored,
                       int n) {
  size_t n0 = slot_numel(P, 0);
  if (n <= 0) return GLOW_OK;
  int chunk = chunk_images(P), err = GLOW_OK, used = 1, nt = threads_for(n);
  size_t *poff = malloc(sizeof(size_t) * (size_t)(P->nparams ? P->nparams : 1));
  char *need = calloc((size_t)P->nslots, 1); /* the slots some node reads */
  if (!poff || !need) {
    free(poff);
    free(need);
    return GLOW_ENOMEM;
  }
  for (int k = 0; k < P->nnodes; k++) {
    const glow_plan_node *nd = &P->nodes[k];
    if (nd->kind == GLOW_PLAN_CONV) need[nd->x] = 1;
    for (int i = 0; nd->kind == GLOW_PLAN_EW && i < nd->nin; i++)
      if (nd->in_kind[i] == GLOW_PLAN_SLOT) need[nd->in_idx[i]] = 1;
  }
  size_t pg = param_total(P, poff);
  float **pgs = NULL;
  size_t wide = (size_t)chunk * n0;
  for (int s = 1; s < P->nslots; s++)
    if ((size_t)chunk * slot_numel(P, s) > wide) wide = (size_t)chunk * slot_numel(P, s);
#pragma omp parallel num_threads(nt)
  {
    int t, tn;
    glow_thread_share(&t, &tn);
#pragma omp single
    {
      used = tn;
      pgs = calloc((size_t)tn, sizeof(float *));
    }
    int i0 = (int)((long)n * t / tn), i1 = (int)((long)n * (t + 1) / tn);
    tbuf T;
    memset(&T, 0, sizeof T);
    int rc = pgs && tbuf_init(P, &T, chunk, 1, stored, pg) ? GLOW_OK : GLOW_ENOMEM;
    for (int b0 = i0; b0 < i1 && !rc; b0 += chunk) {
      int nb = i1 - b0 < chunk ? i1 - b0 : chunk;
      point_values(P, &T, x, stored, NULL, b0);
      rc = forward_chunk(P, &T, stored, need, nb);
      if (rc) break;
      memset(T.set, 0, (size_t)P->nslots);
      T.adj[0] = dx + (size_t)b0 * n0;
      float *own_out = T.adj[P->out];
      T.adj[P->out] = (float *)(uintptr_t)(dy + (size_t)b0 * slot_numel(P, P->out));
      T.set[P->out] = 1;
      if (P->out == 0) { /* the identity: dx = dy, nothing else */
        memcpy(dx + (size_t)b0 * n0, dy + (size_t)b0 * n0, sizeof(float) * nb * n0);
      } else {
        rc = backward_chunk(P, &T, poff, wide, nb);
        if (!rc && !T.set[0]) memset(T.adj[0], 0, sizeof(float) * nb * n0); /* x does not reach the output */
      }
      T.adj[P->out] = own_out;
    }
    if (pgs) pgs[t] = rc ? NULL : T.pg;
    if (!rc) T.pg = NULL; /* summed below */
    tbuf_free(&T);
    if (rc) {
#pragma omp critical(glow_plan_err)
      err = rc;
    }
  }
  if (!err) {
    for (int i = 0; i < P->nparams; i++) {
      if (!P->params[i].grad) continue;
      for (int t = 0; t < used; t++) {
        const float *src = pgs[t] + poff[i];
        float *dst = P->params[i].grad;
        for (int64_t j = 0; j < P->params[i].numel; j++) dst[j] += src[j];
      }
    }
  }
  for (int t = 0; pgs && t < used; t++) glow_free(pgs[t]);
  free(pgs);
  free(poff);
  free(need);
  return err;
}
