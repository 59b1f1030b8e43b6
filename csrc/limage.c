/*
 * limage.c -- the Lua binding of image.c: PNG grids and PNG reading.
 *
 * save_grid(path, x {n, h, w, c}, cols, padding, jpeg_quality) -> true | nil, message:
 * a PNG, or a JPEG at jpeg_quality (1..100) when it is given
 * read_png(path, bg) -> x {1, h, w, c} | nil, message, with x = (v + 0.5)/256 - 0.5
 * (the 8-bit preprocessing at the bin centre); transparency composited over
 * bg 0xRRGGBB (default white). Misuse raises an error; an
 * unwritable or unreadable file returns nil, message.
 */
#include <stdlib.h>
#include <string.h>

#include "glow.h"
#include "lglow.h"

static int l_save_grid(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int n, h, w, c;
  Tensor *x = lg_checkimg(L, 2, "save_grid: x", &n, &h, &w, &c);
  lua_Integer cols = luaL_optinteger(L, 3, 8), pad = luaL_optinteger(L, 4, 1);
  lua_Integer quality = luaL_optinteger(L, 5, 0); /* 0: PNG */
  if (c != 1 && c != 3) {
    char b[128];
    lg_fail(L, "save_grid: x must have 1 (gray) or 3 (RGB) channels, got shape %s",
            lg_shapestr(x, b, sizeof b));
  }
  if (cols < 1 || cols > 1 << 16) lg_fail(L, "save_grid: cols must be a positive integer, got %I", cols);
  if (pad < 0 || pad > 1 << 10) lg_fail(L, "save_grid: padding must be an integer >= 0, got %I", pad);
  if (quality < 0 || quality > 100) lg_fail(L, "save_grid: quality must be in 1..100, got %I", quality);
  int gh, gw;
  glow_grid_size(n, h, w, (int)cols, (int)pad, &gh, &gw);
  if ((int64_t)gh * gw * c > (int64_t)1 << 31) lg_fail(L, "save_grid: the grid %dx%d is too large", gh, gw);
  uint8_t *buf = (uint8_t *)lua_newuserdatauv(L, (size_t)gh * gw * c, 0);
  glow_image_grid(x->data, n, h, w, c, (int)cols, (int)pad, buf);
  char err[512];
  int rc = quality ? glow_jpeg_write(path, buf, gh, gw, c, (int)quality, err, sizeof err)
                   : glow_png_write(path, buf, gh, gw, c, err, sizeof err);
  if (rc != GLOW_OK) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* the decoded pixels, held by a userdata whose __gc frees them, so a Lua
 * error (out of memory) after decoding leaks nothing */
#define BOXNAME "glow.ImageBuffer"
typedef struct {
  uint8_t *p;
} Box;

static int box_gc(lua_State *L) {
  Box *b = (Box *)luaL_checkudata(L, 1, BOXNAME);
  free(b->p);
  b->p = NULL;
  return 0;
}

static int l_read_png(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer v = luaL_optinteger(L, 2, 0xFFFFFF);
  if (v < 0 || v > 0xFFFFFF) lg_fail(L, "read_png: the background must be 0xRRGGBB, got %I", v);
  uint8_t bg[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
  Box *bx = (Box *)lua_newuserdatauv(L, sizeof(Box), 0);
  bx->p = NULL;
  luaL_setmetatable(L, BOXNAME);
  int h, w, c;
  char err[512];
  int rc = glow_png_read(path, bg, &bx->p, &h, &w, &c, err, sizeof err);
  if (rc != GLOW_OK) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  int64_t shape[4] = {1, h, w, c};
  Tensor *x = lg_newt(L, 4, shape);
  glow_preprocess(bx->p, x->data, (size_t)h * w * c, 8, NULL);
  free(bx->p);
  bx->p = NULL;
  return 1;
}

/* jpeg_write(path, bytes, h, w, c, quality) -> true | nil, message: bytes a
 * string of h * w * c uint8 values (HWC); for the specs, which need JPEG files */
static int l_jpeg_write(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *bytes = luaL_checklstring(L, 2, &len);
  lua_Integer h = luaL_checkinteger(L, 3), w = luaL_checkinteger(L, 4), c = luaL_checkinteger(L, 5);
  lua_Integer q = luaL_optinteger(L, 6, 95);
  if (h < 1 || w < 1 || h > 65500 || w > 65500 || (c != 1 && c != 3) || (lua_Integer)len != h * w * c)
    lg_fail(L, "jpeg_write: expected %Ix%Ix%I bytes (c 1 or 3), got %I", h, w, c, (lua_Integer)len);
  if (q < 1 || q > 100) lg_fail(L, "jpeg_write: quality must be in 1..100, got %I", q);
  char err[512];
  int rc = glow_jpeg_write(path, (const uint8_t *)bytes, (int)h, (int)w, (int)c, (int)q, err,
                           sizeof err);
  if (rc != GLOW_OK) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* synth_image(path, format, h, w, c, pattern, quality, layout, seed) -> true | nil,
 * message: a synthetic image (glow_image_synth) for specs and benchmarks;
 * format "png" or "jpeg", pattern "zero", "smooth" or "photo" */
static int l_synth_image(lua_State *L) {
  static const char *const formats[] = {"png", "jpeg", NULL};
  static const char *const patterns[] = {"zero", "smooth", "photo", NULL};
  const char *path = luaL_checkstring(L, 1);
  int jpeg = luaL_checkoption(L, 2, NULL, formats);
  lua_Integer h = luaL_checkinteger(L, 3), w = luaL_checkinteger(L, 4), c = luaL_checkinteger(L, 5);
  int pattern = luaL_checkoption(L, 6, "smooth", patterns);
  lua_Integer q = luaL_optinteger(L, 7, 90);
  int layout = lua_toboolean(L, 8);
  lua_Integer seed = luaL_optinteger(L, 9, 0);
  if (h < 1 || w < 1 || h > 1000000 || w > 1000000 || (c != 1 && c != 3) || q < 1 || q > 100)
    lg_fail(L, "synth_image: bad size %Ix%Ix%I or quality %I", h, w, c, q);
  char err[512];
  int rc = glow_image_synth(path, jpeg, (int)h, (int)w, (int)c, pattern, (int)q, layout,
                            (uint64_t)seed, err, sizeof err);
  if (rc != GLOW_OK) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg funcs[] = {{"save_grid", l_save_grid},     {"read_png", l_read_png},
                                 {"jpeg_write", l_jpeg_write},   {"synth_image", l_synth_image},
                                 {NULL, NULL}};

void lg_open_image(lua_State *L) {
  if (luaL_newmetatable(L, BOXNAME)) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
}
