/*
 * lcheckpoint.c -- the Lua binding of checkpoint.c, the safetensors file
 * layer. lua/glow/checkpoint.lua builds and validates the JSON header; these
 * functions move bytes. Misuse (a wrong argument) raises; I/O failure and
 * corrupt files return nil plus a message naming the file. Every array the
 * core needs is a userdata on the stack, made before any file is opened, so
 * a Lua error can never leave a file open or memory unfreed.
 *
 *   checkpoint_temp_path(path) -> the temporary file a write goes through
 *   checkpoint_write(path, header, values) -> true | nil, message
 *   checkpoint_read_header(path) -> header, header_len, file_size | nil, message
 *   checkpoint_read_data(path, header_len, file_size, shapes, begins)
 *       -> array of tensors | nil, message
 */
#include <limits.h>
#include <string.h>

#include "glow.h"
#include "lglow.h"

#define ERRLEN 1024

/* a path argument: a string without NUL bytes */
static const char *checkpath(lua_State *L, int i, const char *fn) {
  size_t len;
  const char *p = luaL_checklstring(L, i, &len);
  if (len == 0) lg_fail(L, "%s: path is empty", fn);
  if (strlen(p) != len) lg_fail(L, "%s: path contains a NUL byte", fn);
  return p;
}

/* a non-negative integer argument */
static uint64_t checksize(lua_State *L, int i, const char *fn, const char *what) {
  lua_Integer v = luaL_checkinteger(L, i);
  if (v < 0) lg_fail(L, "%s: %s must be non-negative, got %I", fn, what, v);
  return (uint64_t)v;
}

static int l_temp_path(lua_State *L) {
  const char *path = checkpath(L, 1, "checkpoint_temp_path");
  size_t n = glow_checkpoint_temp_path(path, NULL, 0);
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, n + 1);
  glow_checkpoint_temp_path(path, p, n + 1);
  luaL_pushresultsize(&b, n);
  return 1;
}

/* checkpoint_write(path, header, values): values an array of tensors, written
 * back to back in that order after the header */
static int l_write(lua_State *L) {
  const char *path = checkpath(L, 1, "checkpoint_write");
  size_t hlen;
  const char *header = luaL_checklstring(L, 2, &hlen);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_Integer count = luaL_len(L, 3);
  if (count > INT_MAX / 2) lg_fail(L, "checkpoint_write: %I tensors is too many", count);
  size_t slots = (size_t)(count ? count : 1);
  const float **data = (const float **)lua_newuserdatauv(L, slots * sizeof(float *), 0);
  size_t *numel = (size_t *)lua_newuserdatauv(L, slots * sizeof(size_t), 0);
  for (lua_Integer i = 0; i < count; i++) {
    lua_geti(L, 3, i + 1);
    Tensor *t = (Tensor *)luaL_testudata(L, -1, TNAME);
    if (!t) lg_fail(L, "checkpoint_write: values[%I] is not a glow.Tensor", i + 1);
    if (!t->data) lg_fail(L, "checkpoint_write: values[%I] is a closed tensor", i + 1);
    data[i] = t->data; /* the values table keeps the tensor alive */
    numel[i] = (size_t)t->n;
    lua_pop(L, 1);
  }
  char err[ERRLEN];
  if (glow_checkpoint_write(path, header, hlen, (int)count, data, numel, err, sizeof err)) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_read_header(lua_State *L) {
  const char *path = checkpath(L, 1, "checkpoint_read_header");
  uint64_t hlen = 0, size = 0;
  char err[ERRLEN];
  if (glow_checkpoint_probe(path, &hlen, &size, err, sizeof err)) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
  }
  luaL_Buffer b;
  char *dst = luaL_buffinitsize(L, &b, (size_t)hlen); /* at most 100 MB: checked by the probe */
  if (glow_checkpoint_read_header(path, hlen, size, dst, err, sizeof err)) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
  }
  luaL_pushresultsize(&b, (size_t)hlen);
  lua_pushinteger(L, (lua_Integer)hlen);
  lua_pushinteger(L, (lua_Integer)size);
  return 3;
}

/* a shape table of 0 to MAXDIM positive integers (0 dimensions: a scalar) */
static int read_shape(lua_State *L, int idx, lua_Integer k, int64_t *shape, uint64_t limit) {
  if (lua_type(L, idx) != LUA_TTABLE)
    lg_fail(L, "checkpoint_read_data: shapes[%I] must be a table", k);
  lua_Integer nd = luaL_len(L, idx);
  if (nd < 0 || nd > MAXDIM)
    lg_fail(L, "checkpoint_read_data: shapes[%I] has %I dimensions (at most %d)", k, nd, MAXDIM);
  uint64_t n = 1;
  for (int d = 0; d < (int)nd; d++) {
    lua_geti(L, idx, d + 1);
    int isnum;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);
    if (!isnum || v < 1)
      lg_fail(L, "checkpoint_read_data: shapes[%I] dimension %d must be a positive integer", k,
              d + 1);
    if ((uint64_t)v > limit / n)
      lg_fail(L, "checkpoint_read_data: shapes[%I] holds more values than the file", k);
    n *= (uint64_t)v;
    shape[d] = v;
  }
  return (int)nd;
}

/* checkpoint_read_data(path, header_len, file_size, shapes, begins): makes one
 * tensor per shape and reads its values from buffer offset begins[i] */
static int l_read_data(lua_State *L) {
  const char *fn = "checkpoint_read_data";
  const char *path = checkpath(L, 1, fn);
  uint64_t hlen = checksize(L, 2, fn, "header_len");
  uint64_t size = checksize(L, 3, fn, "file_size");
  luaL_checktype(L, 4, LUA_TTABLE);
  luaL_checktype(L, 5, LUA_TTABLE);
  lua_Integer count = luaL_len(L, 4);
  if (luaL_len(L, 5) != count)
    lg_fail(L, "%s: %I shapes but %I offsets", fn, count, (lua_Integer)luaL_len(L, 5));
  if (count > INT_MAX / 2) lg_fail(L, "%s: %I tensors is too many", fn, count);
  uint64_t limit = size / 4 ? size / 4 : 1; /* no tensor holds more floats than the file */
  size_t slots = (size_t)(count ? count : 1);
  float **dst = (float **)lua_newuserdatauv(L, slots * sizeof(float *), 0);
  size_t *numel = (size_t *)lua_newuserdatauv(L, slots * sizeof(size_t), 0);
  uint64_t *begin = (uint64_t *)lua_newuserdatauv(L, slots * sizeof(uint64_t), 0);
  lua_createtable(L, (int)count, 0);
  int out = lua_gettop(L);
  for (lua_Integer i = 0; i < count; i++) {
    lua_geti(L, 5, i + 1);
    int isnum;
    lua_Integer b = lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);
    if (!isnum || b < 0) lg_fail(L, "%s: begins[%I] must be a non-negative integer", fn, i + 1);
    begin[i] = (uint64_t)b;
    int64_t shape[MAXDIM];
    lua_geti(L, 4, i + 1);
    int nd = read_shape(L, lua_gettop(L), i + 1, shape, limit);
    lua_pop(L, 1);
    Tensor *t = lg_newt(L, nd, shape);
    dst[i] = t->data;
    numel[i] = (size_t)t->n;
    lua_rawseti(L, out, i + 1);
  }
  char err[ERRLEN];
  if (glow_checkpoint_read_data(path, hlen, size, (int)count, begin, numel, dst, err,
                                sizeof err)) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_settop(L, out);
  return 1;
}

static const luaL_Reg funcs[] = {{"checkpoint_temp_path", l_temp_path},
                                 {"checkpoint_write", l_write},
                                 {"checkpoint_read_header", l_read_header},
                                 {"checkpoint_read_data", l_read_data},
                                 {NULL, NULL}};

void lg_open_checkpoint(lua_State *L) { luaL_setfuncs(L, funcs, 0); }
