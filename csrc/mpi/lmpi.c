/*
 * lmpi.c -- the optional MPI component: the Lua module glow.mpi, a thin
 * binding of the few MPI calls data-parallel training needs (Open MPI from
 * Debian: libopenmpi-dev). Built only when CMake finds MPI; glow.distributed
 * (lua/glow/distributed.lua) is the interface users call.
 *
 *   init()                 MPI_Init_thread (FUNNELED: OpenMP threads never call MPI)
 *   rank(), size()         in MPI_COMM_WORLD
 *   allreduce(t)           t <- sum of t over the ranks, in place (float32)
 *   sum({numbers...})      -> {sums...} over the ranks (float64)
 *   broadcast(t, root)     t <- root's t, in place
 *   barrier(), finalize(), abort(code)
 *
 * Errors are fatal (MPI's default handler): a lost rank makes the others'
 * collectives fail and mpirun end the whole job, instead of waiting forever.
 */
#include <lauxlib.h>
#include <lua.h>
#include <mpi.h>
#include <stdint.h>

#include "../lglow.h"

/* a live glow.Tensor (the metatable glow.core registered; this module does
 * not link glow.core's helpers) */
static Tensor *checkt(lua_State *L, int i) {
  Tensor *t = (Tensor *)luaL_checkudata(L, i, TNAME);
  if (!t->data) luaL_error(L, "bad argument #%d: the tensor is closed", i);
  return t;
}

static int initialized(void) {
  int flag = 0, done = 0;
  MPI_Initialized(&flag);
  MPI_Finalized(&done);
  return flag && !done;
}

static void need_init(lua_State *L, const char *what) {
  if (!initialized()) luaL_error(L, "glow.mpi.%s: MPI is not initialized (call init first)", what);
}

static int l_init(lua_State *L) {
  int done = 0;
  MPI_Finalized(&done);
  if (done) return luaL_error(L, "glow.mpi.init: MPI was finalized; it cannot start again");
  if (!initialized()) {
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      return luaL_error(L, "glow.mpi.init: MPI_Init_thread failed");
    if (provided < MPI_THREAD_FUNNELED)
      return luaL_error(L, "glow.mpi.init: this MPI does not allow threads in a process (needs FUNNELED)");
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_initialized(lua_State *L) {
  lua_pushboolean(L, initialized());
  return 1;
}

static int l_rank(lua_State *L) {
  need_init(L, "rank");
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  lua_pushinteger(L, r);
  return 1;
}

static int l_size(lua_State *L) {
  need_init(L, "size");
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  lua_pushinteger(L, s);
  return 1;
}

/* MPI counts are ints: large buffers go in pieces */
#define PIECE ((int64_t)1 << 30)

/* op on t's floats in pieces of at most PIECE (root < 0: allreduce sum,
 * else broadcast from root) */
static void in_pieces(Tensor *t, int root) {
  for (int64_t o = 0; o < t->n; o += PIECE) {
    int c = (int)(t->n - o < PIECE ? t->n - o : PIECE);
    if (root < 0)
      MPI_Allreduce(MPI_IN_PLACE, t->data + o, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    else
      MPI_Bcast(t->data + o, c, MPI_FLOAT, root, MPI_COMM_WORLD);
  }
}

static int l_allreduce(lua_State *L) {
  need_init(L, "allreduce");
  in_pieces(checkt(L, 1), -1);
  lua_settop(L, 1);
  return 1;
}

static int l_sum(lua_State *L) {
  need_init(L, "sum");
  luaL_checktype(L, 1, LUA_TTABLE);
  int n = (int)luaL_len(L, 1);
  if (n < 1 || n > 64) return luaL_error(L, "glow.mpi.sum: expected 1 to 64 numbers, got %d", n);
  double v[64];
  for (int i = 0; i < n; i++) {
    lua_geti(L, 1, i + 1);
    int isnum = 0;
    v[i] = lua_tonumberx(L, -1, &isnum);
    if (!isnum) return luaL_error(L, "glow.mpi.sum: element %d is not a number", i + 1);
    lua_pop(L, 1);
  }
  MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushnumber(L, v[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int l_broadcast(lua_State *L) {
  need_init(L, "broadcast");
  Tensor *t = checkt(L, 1);
  int root = (int)luaL_optinteger(L, 2, 0), size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (root < 0 || root >= size) return luaL_error(L, "glow.mpi.broadcast: root %d is not a rank (0..%d)", root, size - 1);
  in_pieces(t, root);
  lua_settop(L, 1);
  return 1;
}

static int l_barrier(lua_State *L) {
  need_init(L, "barrier");
  MPI_Barrier(MPI_COMM_WORLD);
  return 0;
}

static int l_finalize(lua_State *L) {
  (void)L;
  if (initialized()) MPI_Finalize();
  return 0;
}

static int l_abort(lua_State *L) {
  int code = (int)luaL_optinteger(L, 1, 1);
  if (initialized()) MPI_Abort(MPI_COMM_WORLD, code);
  return 0;
}

static const luaL_Reg funcs[] = {{"init", l_init},           {"initialized", l_initialized},
                                 {"rank", l_rank},           {"size", l_size},
                                 {"allreduce", l_allreduce}, {"sum", l_sum},
                                 {"broadcast", l_broadcast}, {"barrier", l_barrier},
                                 {"finalize", l_finalize},   {"abort", l_abort},
                                 {NULL, NULL}};

int luaopen_glow_mpi(lua_State *L) {
  luaL_newlib(L, funcs);
  return 1;
}
