/*
 * fuzz_checkpoint.c -- libFuzzer targets for checkpoints from elsewhere:
 *
 * fuzz_checkpoint: the safetensors reader, glow.checkpoint.read, which is
 *   the C file layer (frame, header, data ranges: csrc/checkpoint.c) under
 *   the Lua header checks (JSON, dtypes, shapes, offsets:
 *   lua/glow/checkpoint.lua, lua/glow/json.lua). A bad file must come back
 *   as nil and a message that starts with its path.
 * fuzz_load (this file built with FUZZ_LOAD): glow.load, which reads the
 *   same way and then checks the stored configuration, builds the model and
 *   copies the tensors in. A bad file must come back as nil and a message
 *   that names its path.
 *
 * One Lua state with glow.core preloaded runs the reader on every input. A
 * raised Lua error, like a crash or a sanitizer report, is a bug: the target
 * aborts.
 *
 * libFuzzer sees the coverage of the C it compiled, not of the Lua the
 * interpreter runs: a line hook turns each pair of consecutive Lua lines
 * (source, line) into an extra coverage counter, so inputs that reach new
 * branches of the JSON parser and the checks count as new.
 */
#define _GNU_SOURCE /* memfd_create */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <string.h>

#include "fuzz_util.h"

int luaopen_glow_core(lua_State *L);

#ifdef FUZZ_LOAD
#define TARGET "fuzz_load"
/* a model: (model, {}) so that both entries return two tables */
#define READER                                                                                     \
  "local load = require('glow').load\n"                                                           \
  "read = function(p) local m, e = load(p); if m then return m, {} end; return nil, e end"
#else
#define TARGET "fuzz_checkpoint"
#define READER "read = require('glow.checkpoint').read"
#endif

static lua_State *L;

/* extra coverage counters, read by libFuzzer alongside its own */
#define LUA_EDGES (1u << 15)
__attribute__((section("__libfuzzer_extra_counters"))) static uint8_t lua_edges[LUA_EDGES];
static uintptr_t prev_line;

static void line_hook(lua_State *S, lua_Debug *ar) {
  lua_getinfo(S, "S", ar);
  /* ar->source is the chunk's interned name: one pointer per file */
  uintptr_t here = ((uintptr_t)ar->source >> 4) * 2654435761u ^ (uintptr_t)ar->currentline * 40503u;
  uint8_t *c = &lua_edges[(here ^ (prev_line >> 1)) & (LUA_EDGES - 1)];
  if (*c < 255) (*c)++;
  prev_line = here;
}

static void setup(void) {
  L = luaL_newstate();
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_glow_core);
  lua_setfield(L, -2, "glow.core");
  lua_pop(L, 1);
  /* the Lua sources of this checkout (GLOW_LUA_DIR, set by CMake) */
  if (luaL_dostring(L, "package.path = '" GLOW_LUA_DIR "/?.lua;" GLOW_LUA_DIR "/?/init.lua'\n"
                       "package.cpath = ''\n" READER) != LUA_OK) {
    fprintf(stderr, TARGET ": %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_sethook(L, line_hook, LUA_MASKLINE, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) setup();
  char p[64];
  int fd = fuzz_file(data, size, p);
  if (fd < 0) return 0;
  prev_line = 0;
  lua_getglobal(L, "read");
  lua_pushstring(L, p);
  if (lua_pcall(L, 1, 2, 0) != LUA_OK) {
    fprintf(stderr, TARGET ": the reader raised instead of returning nil, message: %s\n",
            lua_tostring(L, -1));
    abort();
  }
  if (lua_isnil(L, -2)) {
    const char *msg = lua_tostring(L, -1);
#ifdef FUZZ_LOAD
    int named = msg && strstr(msg, p) != NULL;
#else
    int named = msg && strncmp(msg, p, strlen(p)) == 0;
#endif
    if (!named) {
      fprintf(stderr, TARGET ": the message does not name the path %s: %s\n", p,
              msg ? msg : "(not a string)");
      abort();
    }
  } else if (!lua_istable(L, -2) || !lua_istable(L, -1)) {
    fprintf(stderr, TARGET ": the reader returned neither two tables nor (nil, message)\n");
    abort();
  }
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  close(fd);
  return 0;
}
