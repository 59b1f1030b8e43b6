/*
 * lglow.c -- the Lua module `glow.core`: its entry point sets up BLAS and the
 * allocator, makes the module table and has each binding file add its part:
 *
 *   ltensor.c      the "glow.Tensor" class, views, core.arena
 *   lnn.c          the network layers: conv2d, scale_exp, relu, net, actnorm
 *   lflow.c        the flow steps: matrices and LU, invconv, permutation,
 *                  layout, affine coupling
 *   lprior.c       the Gaussian, the top prior, the classifier head
 *   lsys.c         process utilities: now, trim, isatty, info
 *   ldata.c        the "glow.Dataset" loaders
 *   limage.c       PNG images
 *   loptim.c       the optimizer loops
 *   lcheckpoint.c  safetensors checkpoints
 *   llinalg.c      matmul, conv2d of any geometry, avg_pool2, upsample2
 *   lops.c         tensor maths: elementwise, broadcasting, reductions,
 *                  copies, gathers, fused elementwise programs
 *   lscan.c        along a dimension, small matrices
 *   lplan.c        per-image network plans
 *
 * Each of them depends only on lglow.h and the shared helpers of lhelpers.c;
 * only this file knows them all.
 */
#include <lauxlib.h>
#include <lua.h>

#include "glow.h"
#include "lglow.h"

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
  lua_newtable(L);
  lg_open_tensor(L);
  lg_open_nn(L);
  lg_open_flow(L);
  lg_open_prior(L);
  lg_open_sys(L);
  lg_open_data(L);
  lg_open_image(L);
  lg_open_optim(L);
  lg_open_checkpoint(L);
  lg_open_linalg(L);
  lg_open_ops(L);
  lg_open_scan(L);
  lg_open_plan(L);
  return 1;
}
