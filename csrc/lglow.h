/*
 * lglow.h -- what the binding files share: the "glow.Tensor" userdata (its
 * class is in ltensor.c), the helpers that check arguments and make tensors
 * (lhelpers.c), and each binding file's lg_open_* (called by lglow.c, the
 * module's entry point). Only binding files (l*.c) include it, and with it
 * lua.h.
 */
#ifndef LGLOW_H
#define LGLOW_H

#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>

#define TNAME "glow.Tensor"
#define MAXDIM 8
/* per-channel kernels keep a few values per channel on the C stack */
#define MAXCHAN 65536

typedef struct {
  float *data;
  int64_t n;
  int ndim;
  int64_t shape[MAXDIM];
  int owns;
} Tensor;

/* lhelpers.c: checking arguments and making tensors */
/* raise a Lua error (printf-like, lua_pushfstring's formats) without a position */
int lg_fail(lua_State *L, const char *fmt, ...);
Tensor *lg_checkt(lua_State *L, int i);                  /* a tensor argument */
Tensor *lg_optt(lua_State *L, int i);                    /* a tensor or nil/none -> NULL */
const char *lg_shapestr(const Tensor *t, char *buf, size_t len); /* "{2, 3}" */
Tensor *lg_newt_(lua_State *L, int ndim, const int64_t *shape, int zero); /* pushed */
Tensor *lg_newt(lua_State *L, int ndim, const int64_t *shape); /* pushed, uninitialized */
Tensor *lg_newlike(lua_State *L, const Tensor *src);      /* pushed, uninitialized */
int lg_readshape(lua_State *L, int idx, int64_t *shape);  /* a shape table -> ndim */
int64_t lg_numel(lua_State *L, int nd, const int64_t *shape); /* raises on overflow */
void lg_neednumel(lua_State *L, const Tensor *t, int64_t n, const char *what);
void lg_needdims(lua_State *L, const Tensor *t, int nd, const char *what);
Tensor *lg_checkimg(lua_State *L, int i, const char *what, int *n, int *h, int *w, int *c);
Tensor *lg_checkchannels(lua_State *L, int i, int64_t c, const char *what); /* {n, h, w, c} */
double lg_dlogdet_sum(lua_State *L, int i, int64_t n); /* nil, a number or a tensor {n}, summed */
/* copy the n floats of the stash at idx (core.stash) into dst and free it (ltensor.c) */
void lg_unstash_into(lua_State *L, int idx, float *dst, int64_t n, const char *what);
int64_t lg_lastdim(const Tensor *t);
/* the channel count (last dimension) of a per-channel kernel's input, at most MAXCHAN */
int64_t lg_chan(lua_State *L, const Tensor *t, const char *what);
/* a Lua array of count integers in [lo, hi); the array is anchored on the stack */
int *lg_readints(lua_State *L, int idx, int64_t count, int lo, int hi, const char *what);
void lg_checkrc(lua_State *L, int rc, const char *what);   /* raises on GLOW_E* codes */
void lg_samenumel(lua_State *L, Tensor *a, Tensor *b, const char *what);

/* each binding file adds its functions to the module table on top of the
 * stack; lglow.c calls them in this order */
void lg_open_tensor(lua_State *L);
void lg_open_nn(lua_State *L);
void lg_open_flow(lua_State *L);
void lg_open_prior(lua_State *L);
void lg_open_sys(lua_State *L);
void lg_open_data(lua_State *L);
void lg_open_image(lua_State *L);
void lg_open_optim(lua_State *L);
void lg_open_checkpoint(lua_State *L);
void lg_open_linalg(lua_State *L);
void lg_open_ops(lua_State *L);
void lg_open_scan(lua_State *L);
void lg_open_plan(lua_State *L);

#endif
