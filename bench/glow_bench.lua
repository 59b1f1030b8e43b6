--- The glow side of bench/compare.sh: times one configuration's training
--- step, encode or sample, and prints one JSON line like bench/torch_glow.py.
---
---   lua5.4 bench/glow_bench.lua fmnist-small train 5 [depth=N] [memory=store|reversible|auto] [net=autograd]
---   lua5.4 bench/glow_bench.lua sgemm 2048 3     -- a square sgemm's GFLOP/s
local glow = require "glow"
local json = require "glow.json"
local core = glow.core

local CONFIGS = {
  ["fmnist-small"] = { shape = { 28, 28, 1 }, levels = 2, depth = 8, width = 128, batch = 64 },
  ["cifar-k8"] = { shape = { 32, 32, 3 }, levels = 3, depth = 8, width = 512, batch = 16 },
  ["cifar-paper"] = { shape = { 32, 32, 3 }, levels = 3, depth = 32, width = 512, batch = 64 },
}

local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end

local function peak_rss_mib()
  for l in io.lines("/proc/self/status") do
    local v = l:match("^VmHWM:%s+(%d+)")
    if v then return tonumber(v) / 1024 end
  end
end

--- FLOPs of the coupling networks' and split priors' convolutions for one
--- forward pass over a batch of n (the rest is a few percent).
local function forward_flops(cfg, n)
  local h, w, c = cfg.shape[1], cfg.shape[2], cfg.shape[3]
  local total = 0
  for l = 1, cfg.levels do
    h, w, c = h // 2, w // 2, c * 4
    local rows = n * h * w
    local c1, c2 = c // 2, c - c // 2
    local per = 2 * rows * (9 * c1 * cfg.width + cfg.width * cfg.width + 9 * cfg.width * 2 * c2)
    total = total + cfg.depth * (per + 2 * rows * c * c)
    if l < cfg.levels then
      total = total + 2 * rows * 9 * c1 * 2 * c2
      c = c1
    end
  end
  return total
end

local what, arg2, arg3 = arg[1], arg[2], arg[3]
if what == "sgemm" then
  local nn = tonumber(arg2) or 2048
  local a = glow.randn({ 1, 1, nn, nn }, 1, 1)
  local b = glow.randn({ 1, 1, nn, nn }, 2, 1)
  core.conv2d_forward(a, b)
  local times = {}
  for _ = 1, tonumber(arg3) or 3 do
    local t0 = core.now()
    core.conv2d_forward(a, b)
    times[#times + 1] = core.now() - t0
  end
  print(json.encode { what = "sgemm", n = nn, gflops = 2 * nn ^ 3 / median(times) / 1e9,
    kernel = glow.info().blas_kernel })
  os.exit(0)
end

local name, steps = what, tonumber(arg3) or 5
local cfg = assert(CONFIGS[name], "unknown config " .. tostring(name))
local over = {}
for i = 4, #arg do
  local k, v = arg[i]:match("^(%w+)=(%w+)$")
  if k ~= "depth" and k ~= "memory" and k ~= "net" then error("glow_bench: unknown setting " .. arg[i], 0) end
  over[k] = tonumber(v) or v
end
cfg.depth = over.depth or cfg.depth
local mode = arg2 or "train"
local n = cfg.batch
-- net=autograd: the default coupling network written with the ops and glow.autograd
local model = glow.Glow { shape = cfg.shape, levels = cfg.levels, depth = cfg.depth, width = cfg.width,
  memory = over.memory, net = over.net == "autograd" and require("bench_util").ops_net or nil }
local s = cfg.shape
local x = glow.rand({ n, s[1], s[2], s[3] }, 1):add_(glow.Tensor { n, s[1], s[2], s[3] }:fill_(-0.5))
model:initialize(x)
local opt = glow.optim.Adam(model, { lr = 1e-3 })
local function once()
  if mode == "train" then model:train_step(x, nil, opt)
  elseif mode == "encode" then model:encode(x)
  else model:sample(n, { temperature = 0.7 }) end
end
once()
local times = {}
for _ = 1, steps do
  local t0 = core.now()
  once()
  times[#times + 1] = core.now() - t0
end
local med = median(times)
local flops = forward_flops(cfg, n) * (mode == "train" and (model:stores(n) and 3 or 4) or 1)
local params = 0
for _, p in ipairs(model:parameters()) do params = params + p.value:numel() end
print(json.encode { config = name, depth = cfg.depth, what = mode, batch = n, median_s = med, images_per_s = n / med,
  peak_rss_mib = peak_rss_mib(), gflops = flops / med / 1e9, memory = model:stores(n) and "store" or "reversible",
  threads = glow.info().omp_threads, params = params })
