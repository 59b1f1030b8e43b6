--- Run by spec/distributed_spec.lua, as one process or under mpirun:
---   lua5.4 spec/mpi/train.lua OUT STEPS [CHECKPOINT_EVERY|-] [PIDFILE_PREFIX|-] [RESUME|-] [BATCH]
--- trains a small model on a made-up dataset (global batch 64) through
--- glow.train.run for STEPS steps (1 thread per process), then rank 0 writes
--- the flat parameter vector to OUT (one %.9g per line). With
--- CHECKPOINT_EVERY it checkpoints to OUT.ckpt every so many steps; with
--- PIDFILE_PREFIX each rank writes its process id to PREFIX<rank>; with
--- RESUME it continues that checkpoint's run up to STEPS steps in all; BATCH
--- replaces the global batch of 64.
local glow = require "glow"
local dist = glow.distributed
if dist.launched() then dist.init() end
local out, steps = arg[1], math.tointeger(tonumber(arg[2]))
local every, pidfile = tonumber(arg[3]), arg[4] ~= "-" and arg[4] or nil
local resume, batch = arg[5] ~= "-" and arg[5] or nil, math.tointeger(tonumber(arg[6])) or 64

if pidfile then
  local f = assert(io.open(pidfile .. dist.rank(), "w"))
  f:write(io.open("/proc/self/stat"):read("n"), "\n")
  f:close()
end

-- 256 structured 8x8 gray images (spec/idx.lua, from this checkout)
package.path = (arg[0]:match("^(.-)spec/mpi/train%.lua$") or "./") .. "?.lua;" .. package.path
local ds = require("spec.idx").bars(glow, 256)

-- ActNorm starts from all 256 images (init_size): from 64, a channel at the
-- 2x2 level starts with a near-zero spread and a scale that turns the
-- rounding of one OpenBLAS kernel against another (SkylakeX, Haswell) into a
-- 1e-4 difference after 6 steps; from 256 the runs agree within 1e-7
local model = resume and assert(glow.load(resume))
  or glow.Glow { shape = { 8, 8, 1 }, levels = 2, depth = 2, width = 16, seed = 1 }
local result = glow.train.run { model = model, train = ds, test = ds, epochs = 100, batch = batch, lr = 2e-3,
  warmup = 2, seed = 3, progress = false, init_size = 256, max_steps = steps, eval = false,
  checkpoint = every and (out .. ".ckpt") or nil, checkpoint_every = every, resume = resume and true }
if dist.is_root() then
  local f = assert(io.open(out, "w"))
  local v = result.optimizer.value
  for i = 1, v:numel() do f:write(string.format("%.9g\n", v:get(i))) end
  f:close()
end
dist.finalize()
