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
  -- the `glow` command's option parser and folder handling
  "argparse >= 0.7",
  "luafilesystem >= 1.8",
}
-- C libraries the core links (Debian: libopenblas-dev, libpng-dev,
-- zlib1g-dev, libjpeg62-turbo-dev, libssl-dev); CMakeLists.txt finds them itself and
-- names the package to install when one is missing
external_dependencies = {
  OPENBLAS = { library = "openblas" },
  PNG = { header = "png.h", library = "png" },
  ZLIB = { header = "zlib.h", library = "z" },
  JPEG = { header = "jpeglib.h", library = "jpeg" },
  CRYPTO = { header = "openssl/evp.h", library = "crypto" },
}
test_dependencies = {
  "busted >= 2.0",
}
test = {
  type = "busted",
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
  install = {
    bin = {
      glow = "lua/bin/glow",
    },
  },
}
