rockspec_format = "3.0"
package = "glow"
version = "scm-1"
source = {
  url = "git+file://.",
}
description = {
  summary = "Glow: generative flow with invertible 1x1 convolutions, a C core with a Lua front end",
  detailed = [[
Glow (Kingma & Dhariwal, 2018) as a C11 library (OpenBLAS, OpenMP, libpng, libjpeg,
zlib) with a Lua 5.4 package: compose flows, train, evaluate, sample.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    -- one copy of the core per x86-64 level, the best picked when it loads
    -- (named: a build.luarocks/ left by an older build may have cached ON)
    GLOW_NATIVE = "OFF",
    GLOW_TESTS = "OFF",
    LUA_INCDIR = "$(LUA_INCDIR)",
    INSTALL_LIBDIR = "$(LIBDIR)",
    INSTALL_LUADIR = "$(LUADIR)",
  },
}
