/*
 * fuzz_checkpoint.c -- libFuzzer target: the checkpoint (safetensors)
 * reader, glow.checkpoint.read, which is the C file layer (frame, header,
 * data ranges: csrc/checkpoint.c) under the Lua header checks (JSON,
 * dtypes, shapes, offsets: lua/glow/checkpoint.lua, lua/glow/json.lua). One
 * Lua state with glow.core preloaded runs it on every input; a Lua error is
 * a refused file (fine), a crash or sanitizer report is a bug.
 */
#define _GNU_SOURCE /* memfd_create */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "fuzz_util.h"

int luaopen_glow_core(lua_State *L);

static lua_State *L;

static void setup(void) {
  L = luaL_newstate();
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_glow_core);
  lua_setfield(L, -2, "glow.core");
  lua_pop(L, 1);
  /* the Lua sources of this checkout (GLOW_LUA_DIR, set by CMake) */
  if (luaL_dostring(L, "package.path = '" GLOW_LUA_DIR "/?.lua;" GLOW_LUA_DIR "/?/init.lua'\n"
                       "read = require('glow.checkpoint').read") != LUA_OK) {
    fprintf(stderr, "fuzz_checkpoint: %s\n", lua_tostring(L, -1));
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) setup();
  char p[64];
  int fd = fuzz_file(data, size, p);
  if (fd < 0) return 0;
  lua_getglobal(L, "read");
  lua_pushstring(L, p);
  lua_pcall(L, 1, 2, 0); /* (tensors, metadata) or (nil, message) or a raised error */
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  close(fd);
  return 0;
}
