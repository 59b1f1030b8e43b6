/*
 * limage.c -- the Lua binding of image (to be filled in).
 */
#include "glow.h"
#include "lglow.h"

static const luaL_Reg funcs[] = {{NULL, NULL}};

void lg_open_image(lua_State *L) { luaL_setfuncs(L, funcs, 0); }
