/*
 * lcore.c -- glow/core.so, the module Lua loads for require "glow.core": it
 * picks the copy of the core the CPU runs and hands over to it.
 *
 * The build compiles the core once per ISA level (CMakeLists.txt) into
 * glow/core-<level>.so beside this file; this loader is compiled for the
 * x86-64 baseline, so it runs on every x86-64 CPU. It tries the levels best
 * first, reads each copy's glow_isa_required (data: reading it runs none of
 * the copy's code), checks every feature named there on this CPU, and calls
 * the first copy that fits. So the module never dies with an illegal
 * instruction: a build for one CPU only (GLOW_NATIVE) that does not fit this
 * one is refused with one line naming the missing features.
 *
 * GLOW_ISA=<level> in the environment forces a level (for tests and
 * benchmarks); "auto" or empty is the default choice.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

#ifndef GLOW_ISAS
#define GLOW_ISAS "generic"
#endif

int luaopen_glow_core(lua_State *L);

/* the features of the space-separated list req that this CPU lacks, into out */
static void missing_features(const char *req, char *out, size_t len) {
  out[0] = 0;
  char word[64];
  while (*req) {
    while (*req == ' ') req++;
    size_t k = strcspn(req, " ");
    if (k == 0) break;
    snprintf(word, sizeof word, "%.*s", (int)k, req);
    req += k;
    if (glow_cpu_has(word) != 1) {
      size_t used = strlen(out);
      snprintf(out + used, len - used, "%s%s", used ? ", " : "", word);
    }
  }
}

static const char self_mark = 0; /* an object of this file's own, for dladdr */

/* OpenMP's threads spin briefly after each parallel region, then sleep
 * (GOMP_SPINCOUNT=30000, a tenth of libgomp's own 300000), unless the
 * environment says how they wait (OMP_WAIT_POLICY, GOMP_SPINCOUNT): where
 * other work keeps the cores busy, long-spinning threads take the time that
 * work and glow's own next region need, and sleeping at once (passive) made
 * fmnist-small's sampling 5% slower on an idle machine (bench/loaded.sh,
 * bench/RESULTS.md; docs/ARCHITECTURE.md, "Threads"). libgomp reads the
 * setting once, when it is loaded: it is loaded here, before any copy, and
 * the variable is taken out of the environment again, so child processes see
 * it as it was. */
static void openmp_wait_policy(void) {
  if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
  setenv("GOMP_SPINCOUNT", "30000", 1);
  void *h = dlopen("libgomp.so.1", RTLD_NOW | RTLD_GLOBAL);
  (void)h; /* stays loaded: the copies link it; without it they say so when loaded */
  unsetenv("GOMP_SPINCOUNT");
}

int luaopen_glow_core(lua_State *L) {
  openmp_wait_policy();
  const char *forced = getenv("GLOW_ISA");
  if (forced && (!*forced || strcmp(forced, "auto") == 0)) forced = NULL;
  Dl_info self;
  if (!dladdr((const void *)&self_mark, &self) || !self.dli_fname)
    return luaL_error(L, "glow: cannot find where glow/core.so lies (dladdr failed)");
  const char *slash = strrchr(self.dli_fname, '/');
  int dirlen = slash ? (int)(slash - self.dli_fname) : 1;
  const char *dir = slash ? self.dli_fname : ".";

  /* the first copy that lacked features, and the first that failed to load:
   * said only when no copy fits */
  char levels[256], first_missing[512] = "", first_level[64] = "", load_error[6144] = "";
  int named = 0;
  snprintf(levels, sizeof levels, "%s", GLOW_ISAS);
  for (char *save = NULL, *level = strtok_r(levels, ",", &save); level;
       level = strtok_r(NULL, ",", &save)) {
    if (forced && strcmp(forced, level) != 0) continue;
    named = 1;
    char path[4096];
    snprintf(path, sizeof path, "%.*s/core-%s.so", dirlen, dir, level);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    const char *req = h ? (const char *)dlsym(h, "glow_isa_required") : NULL;
    lua_CFunction open = h ? (lua_CFunction)(void (*)(void))dlsym(h, "glow_core_open") : NULL;
    if (!req || !open) {
      if (!load_error[0]) {
        if (!h)
          snprintf(load_error, sizeof load_error, "cannot load %s: %s", path, dlerror());
        else
          snprintf(load_error, sizeof load_error, "%s is not a copy of glow's core", path);
      }
      continue;
    }
    char miss[512];
    missing_features(req, miss, sizeof miss);
    if (miss[0]) {
      /* the copy stays mapped (it is linked with -z nodelete); none of its code ran */
      if (!first_level[0]) {
        snprintf(first_level, sizeof first_level, "%s", level);
        snprintf(first_missing, sizeof first_missing, "%s", miss);
      }
      continue;
    }
    lua_pushcfunction(L, open);
    lua_call(L, 0, 1);
    lua_pushstring(L, level);
    lua_setfield(L, -2, "isa");
    lua_pushstring(L, req);
    lua_setfield(L, -2, "isa_features");
    lua_pushstring(L, forced ? "GLOW_ISA" : "cpu");
    lua_setfield(L, -2, "isa_chosen_by");
    lua_pushstring(L, GLOW_ISAS);
    lua_setfield(L, -2, "isa_levels");
    return 1;
  }
  if (forced && !named)
    return luaL_error(L, "glow: GLOW_ISA=%s is not a level this build holds (%s, or auto)", forced,
                      GLOW_ISAS);
  if (load_error[0])
    return luaL_error(L, "glow: %s (rebuild or reinstall glow)", load_error);
  if (forced)
    return luaL_error(L, "glow: GLOW_ISA=%s needs %s, which this CPU lacks; unset GLOW_ISA to "
                      "take the best level it runs", forced, first_missing);
  if (strcmp(GLOW_ISAS, "native") == 0)
    return luaL_error(L, "glow: this glow.core was built for its build machine's CPU "
                      "(GLOW_NATIVE, -march=native) and needs %s, which this CPU lacks; rebuild "
                      "without -DGLOW_NATIVE=ON (the default build holds x86-64, x86-64-v3 and "
                      "x86-64-v4 copies and picks one when it loads)", first_missing);
  return luaL_error(L, "glow: no copy of the core fits this CPU (%s: %s lacks %s)", GLOW_ISAS,
                    first_level, first_missing);
}
