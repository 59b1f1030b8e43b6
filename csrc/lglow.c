/*
 * lglow.c -- the Lua binding: the module `glow.core`.
 *
 * One C type, "glow.Tensor": a float32, contiguous, row-major array of up to
 * 8 dimensions. A tensor either owns its memory (inside its userdata) or is
 * a view into another tensor's memory or into an arena block (core.arena:
 * long-lived state outside Lua's heap); the owner is kept alive as the
 * view's user value.
 * Every kernel wrapper checks the element counts of its arguments before it
 * touches memory, raises a Lua error that names the argument and the shapes
 * on misuse, and allocates its outputs as new tensors. Nothing here loops
 * over elements except to copy between Lua tables and tensors.
 */
#include <lauxlib.h>
#include <lua.h>

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <omp.h>

#include "glow.h"
#include "lglow.h"

/* ------------------------------------------------------------------ process */
/* now() -> seconds on a monotonic clock (wall time, for rates and ETAs) */
/* trim() hands memory that malloc holds free back to the system (glibc:
 * free pages anywhere in its heap, not only at its top); a no-op elsewhere */
static int l_trim(lua_State *L) {
  (void)L;
#ifdef __GLIBC__
  malloc_trim(0);
#endif
  return 0;
}

static int l_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + 1e-9 * (lua_Number)ts.tv_nsec);
  return 1;
}

/* isatty(fd) -> boolean: whether progress can redraw in place */
static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* info() -> {blas_kernel, blas_library, blas_threads, omp_threads, isa} */
static int l_info(lua_State *L) {
  lua_createtable(L, 0, 5);
  lua_pushstring(L, glow_isa_name());
  lua_setfield(L, -2, "isa");
  lua_pushstring(L, glow_blas_kernel());
  lua_setfield(L, -2, "blas_kernel");
  lua_pushstring(L, glow_blas_library());
  lua_setfield(L, -2, "blas_library");
  lua_pushinteger(L, glow_blas_threads());
  lua_setfield(L, -2, "blas_threads");
  lua_pushinteger(L, omp_get_max_threads());
  lua_setfield(L, -2, "omp_threads");
  return 1;
}

/* ------------------------------------------------------------------ registration */
static const luaL_Reg core_funcs[] = {
    {"now", l_now},
    {"trim", l_trim},
    {"isatty", l_isatty},
    {"info", l_info},
    {NULL, NULL}};

/* The entry point. In the default build each ISA level's copy of the core
 * exports it as glow_core_open, and glow/core.so (csrc/isa/lcore.c) calls
 * the copy the CPU runs; built on its own (the fuzz targets) it is the
 * module's luaopen. */
#ifdef GLOW_ISA_VARIANT
#define GLOW_CORE_OPEN __attribute__((visibility("default"))) glow_core_open
int GLOW_CORE_OPEN(lua_State *L);
#else
#define GLOW_CORE_OPEN luaopen_glow_core
#endif

int GLOW_CORE_OPEN(lua_State *L) {
  if (glow_blas_init() != GLOW_OK) return lg_fail(L, "glow: %s", glow_blas_error());
  glow_memory_setup();
  luaL_newlib(L, core_funcs);
  lg_open_tensor(L);
  lg_open_nn(L);
  lg_open_flow(L);
  lg_open_prior(L);
  lg_open_data(L);
  lg_open_image(L);
  lg_open_optim(L);
  lg_open_checkpoint(L);
  return 1;
}
