/*
 * lsys.c -- the process utilities of glow.core: now (a monotonic clock),
 * trim (hand malloc's free memory back to the system), isatty, info (the
 * BLAS kernel, library and threads, OpenMP threads and ISA level this copy
 * of the core runs with), and set_threads / threads (the thread count of
 * the core's loops and OpenBLAS, one number for both), trap_signals /
 * untrap_signals / interrupted (SIGINT and SIGTERM counted while trapped;
 * sys.c) and sha256_file.
 */
#include <lauxlib.h>
#include <lua.h>

#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <omp.h>

#include "glow.h"
#include "lglow.h"

/* trim() hands memory that malloc holds free back to the system (glibc:
 * free pages anywhere in its heap, not only at its top); a no-op elsewhere */
static int l_trim(lua_State *L) {
  (void)L;
#ifdef __GLIBC__
  malloc_trim(0);
#endif
  return 0;
}

/* now() -> seconds on a monotonic clock (wall time, for rates and ETAs) */
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

/* info() -> {blas_kernel, blas_library, blas_threads, omp_threads, isa, par_min} */
static int l_info(lua_State *L) {
  lua_createtable(L, 0, 6);
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
  lua_pushinteger(L, glow_threads_wanted());
  lua_setfield(L, -2, "threads_wanted");
  lua_pushboolean(L, glow_threads_adapting());
  lua_setfield(L, -2, "threads_adapt");
  /* the sizes from which ops.c's loops run on threads, per class */
  static const struct {
    const char *name;
    int cls;
  } PAR[] = {{"cheap", GLOW_PAR_CHEAP}, {"math", GLOW_PAR_MATH}, {"reduce", GLOW_PAR_REDUCE},
               {"gather", GLOW_PAR_GATHER}};
  lua_createtable(L, 0, 4);
  for (size_t i = 0; i < sizeof PAR / sizeof PAR[0]; i++) {
    lua_pushinteger(L, (lua_Integer)glow_par_min(PAR[i].cls));
    lua_setfield(L, -2, PAR[i].name);
  }
  lua_setfield(L, -2, "par_min");
  return 1;
}

/* set_threads(n): OpenMP's and OpenBLAS's threads, n an integer >= 1 */
static int l_set_threads(lua_State *L) {
  int isint;
  lua_Integer n = lua_tointegerx(L, 1, &isint);
  if (!isint || n < 1 || n > 4096) {
    const char *got = lua_type(L, 1) == LUA_TNUMBER ? luaL_tolstring(L, 1, NULL) : luaL_typename(L, 1);
    return lg_fail(L, "set_threads: the thread count must be an integer in 1..4096, got %s", got);
  }
  glow_set_threads((int)n);
  return 0;
}

/* threads() -> the thread count of the core's loops (and OpenBLAS's) in effect now */
static int l_threads(lua_State *L) {
  lua_pushinteger(L, glow_threads());
  return 1;
}

/* fit_threads() -> the count in effect after fitting it to the load (glow.h) */
static int l_fit_threads(lua_State *L) {
  lua_pushinteger(L, glow_fit_threads());
  return 1;
}

/* adapt_threads([on]) -> whether the count follows the load (after setting it when on is given) */
static int l_adapt_threads(lua_State *L) {
  if (!lua_isnoneornil(L, 1)) glow_set_adapt(lua_toboolean(L, 1));
  lua_pushboolean(L, glow_threads_adapting());
  return 1;
}

/* trap_signals(): the first SIGINT or SIGTERM from now on is counted, not
 * fatal (a second one ends the process); raises when it cannot be set */
static int l_trap_signals(lua_State *L) {
  if (glow_trap_signals() != GLOW_OK) return lg_fail(L, "trap_signals: sigaction failed");
  return 0;
}

/* untrap_signals(): the handlers from before trap_signals() */
static int l_untrap_signals(lua_State *L) {
  (void)L;
  glow_untrap_signals();
  return 0;
}

/* interrupted() -> the signal's number once one was counted, else false */
static int l_interrupted(lua_State *L) {
  int sig = glow_interrupted();
  if (sig)
    lua_pushinteger(L, sig);
  else
    lua_pushboolean(L, 0);
  return 1;
}

/* sha256_file(path) -> 64 hex digits | nil, message */
static int l_sha256_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char hex[65], err[512];
  if (glow_sha256_file(path, hex, err, sizeof err) != GLOW_OK) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushstring(L, hex);
  return 1;
}

/* probe_dir(dir) -> true | nil, message */
static int l_probe_dir(lua_State *L) {
  char err[512];
  if (glow_probe_dir(luaL_checkstring(L, 1), err, sizeof err) != GLOW_OK) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* write_file(path, bytes) -> true | nil, message: atomically */
static int l_write_file(lua_State *L) {
  size_t len;
  const char *path = luaL_checkstring(L, 1), *bytes = luaL_checklstring(L, 2, &len);
  char err[512];
  if (glow_write_file(path, bytes, len, err, sizeof err) != GLOW_OK) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* lock_dir(dir) -> true | nil, message, holder pid: the lock lasts until
 * the process ends (its descriptor is kept open on purpose) */
static int l_lock_dir(lua_State *L) {
  long holder;
  char err[512];
  int fd = glow_lock_dir(luaL_checkstring(L, 1), &holder, err, sizeof err);
  if (fd < 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    lua_pushinteger(L, holder);
    return 3;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg funcs[] = {
    {"probe_dir", l_probe_dir},
    {"write_file", l_write_file},
    {"lock_dir", l_lock_dir},
    {"trap_signals", l_trap_signals},
    {"untrap_signals", l_untrap_signals},
    {"interrupted", l_interrupted},
    {"sha256_file", l_sha256_file},
    {"now", l_now},
    {"trim", l_trim},
    {"isatty", l_isatty},
    {"info", l_info},
    {"set_threads", l_set_threads},
    {"fit_threads", l_fit_threads},
    {"adapt_threads", l_adapt_threads},
    {"threads", l_threads},
    {NULL, NULL}};

void lg_open_sys(lua_State *L) { luaL_setfuncs(L, funcs, 0); }
