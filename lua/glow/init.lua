--- glow: Glow (Kingma & Dhariwal, 2018) for Lua 5.4.
--- require "glow" returns this table and sets no global.
local core = require "glow.core"
local util = require "glow.util"
local flow = require "glow.flow"

local glow = { core = core, nn = require "glow.nn", VERSION = "scm-1" }

--- glow.Tensor{dims...} makes zeros; glow.Tensor.from(flat, shape) fills one.
glow.Tensor = setmetatable({
  from = core.from,
  is = util.is_tensor,
}, { __call = function(_, shape) return core.tensor(shape) end })

--- glow.randn(shape, seed, std): N(0, std^2) values from a seeded generator.
function glow.randn(shape, seed, std) return core.randn(shape, seed or 0, std or 1) end
--- glow.info(): the BLAS kernel and library in use, the thread counts, and
--- the ISA level of the core's own kernels: isa ("x86-64", "x86-64-v3",
--- "x86-64-v4", or "native" for a GLOW_NATIVE build), isa_features (the CPU
--- features that copy uses), isa_levels (the copies this build holds) and
--- isa_chosen_by ("cpu", or "GLOW_ISA" when the environment forced it);
--- par_min: the sizes (elements) from which the tensor ops run a loop on
--- threads, per class (cheap, math, reduce, gather).
--- print(glow.info()) gives one readable line per field.
local Info = { __name = "glow.info" }
function Info.__tostring(info)
  local features = (info.isa_features or ""):gsub("^%s+", "")
  return string.format("glow %s\n  kernels: %s (chosen by %s; this build holds %s)\n  CPU features: %s\n"
    .. "  OpenBLAS: %s kernel, %d threads (%s)\n  OpenMP: %d threads", glow.VERSION, info.isa, info.isa_chosen_by,
    info.isa_levels, features, info.blas_kernel, info.blas_threads, info.blas_library, info.omp_threads)
end

function glow.info()
  local info = core.info()
  info.isa_features = core.isa_features
  info.isa_levels = core.isa_levels or info.isa
  info.isa_chosen_by = core.isa_chosen_by or "build"
  return setmetatable(info, Info)
end
--- glow.set_threads(n): the threads of glow's own loops (OpenMP) and of
--- OpenBLAS, one count for both, so the two never oversubscribe the cores;
--- glow.threads() reads the count in effect. It starts as OMP_NUM_THREADS,
--- or the number of cores. Each loop still runs on one thread below the size
--- where threads pay (docs/PROTOTYPING.md, "Threads"). A count set here is
--- kept: it turns adapting off (glow.adapt_threads).
function glow.set_threads(n)
  local k = math.tointeger(n)
  if not k or k < 1 or k > 4096 then
    error("set_threads: the thread count must be an integer in 1..4096, got " .. tostring(n), 2)
  end
  core.set_threads(k)
end

function glow.threads() return core.threads() end

--- glow.adapt_threads([on]) -> whether the thread count follows the load.
--- While on, each training step and evaluation batch first checks how long
--- glow's threads waited for a CPU since the last check; above a tenth of
--- their time, it runs on the cores the other runnable tasks leave free, and
--- it goes back up once 3 counts in a row leave cores free: threads that wait
--- at every parallel region for a thread whose core other work took cost more
--- than they give. On by default
--- unless OMP_NUM_THREADS or glow.set_threads chose the count;
--- GLOW_ADAPT_THREADS=0 or 1 in the environment decides otherwise. Results
--- on 1 and 2 threads agree to rounding, not bitwise (docs/ARCHITECTURE.md,
--- "Threads"): pin the count for bitwise-repeatable runs.
function glow.adapt_threads(on)
  if on ~= nil and type(on) ~= "boolean" then
    error("adapt_threads: on must be a boolean or nil, got " .. tostring(on), 2)
  end
  return core.adapt_threads(on)
end

--- glow.rand(shape, seed): U[0, 1) values.
function glow.rand(shape, seed) return core.rand(shape, seed or 0) end

for _, name in ipairs { "ActNorm", "InvConv1x1", "Shuffle", "Reverse", "AffineCoupling",
  "AdditiveCoupling", "FlowStep", "Squeeze", "Split", "Flow" } do
  glow[name] = flow[name]
end
glow.Context = flow.Context
glow.prior = require "glow.prior"
glow.module = require "glow.module"
glow.Model = require "glow.model"
glow.Glow = require "glow.glow"
glow.load = require("glow.persist").load
glow.optim = require "glow.optim"
glow.train = require "glow.train"
glow.modelfile = require "glow.modelfile"
glow.data = require "glow.data"
glow.image = require "glow.image"
glow.plot = require "glow.plot"
glow.checkpoint = require "glow.checkpoint"
glow.distributed = require "glow.distributed"
glow.check = require "glow.check"
glow.autograd = require "glow.autograd"
-- tensor maths: methods and operators on glow.Tensor, functions here that
-- take autograd values too (glow.matmul, glow.conv2d, glow.cat, ...)
require("glow.tensor").install(glow, glow.autograd)

return glow
