--- Streaming data (bench/stream.sh): the in-memory loader against a packed
--- file, and the peak RSS of training on a pack far larger than the data it
--- came from.
---
---   lua5.4 bench/stream.lua compare [--reps 3] [--steps 20] [--threads 2] [--out bench/out]
---   lua5.4 bench/stream.lua big [--n 200000] [--steps 300] [--quick 0] [--out bench/out] [--epoch 1]
---       [--config big64-tiny]
---   lua5.4 bench/stream.lua train SOURCE STEPS   (one measurement, one JSON line; used by the above)
local glow = require "glow"
local json = require "glow.json"
local bench = require "bench_util"
local core = glow.core

local mode = arg[1]

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local n = f:seek("end")
  f:close()
  return n
end

-- the configurations: fmnist-small as bench/glow_bench.lua has it, and a
-- small model for 64x64x3
local CONFIGS = {
  ["fmnist-small"] = { shape = { 28, 28, 1 }, levels = 2, depth = 8, width = 128, batch = 64 },
  ["big64"] = { shape = { 64, 64, 3 }, levels = 3, depth = 4, width = 64, batch = 32 },
  -- a model small enough that one whole epoch of 200,000 images (every
  -- page of the file read) fits a bench run
  ["big64-tiny"] = { shape = { 64, 64, 3 }, levels = 3, depth = 1, width = 16, batch = 64 },
}

if mode == "train" then
  -- train SOURCE STEPS [CONFIG]: SOURCE "memory" (Fashion-MNIST in memory)
  -- or the path of a pack; shuffled batches; the first step (with the
  -- ActNorm initialization) is not timed; batch loading is.
  local source, steps, name = arg[2], tonumber(arg[3]) or 20, arg[4] or "fmnist-small"
  local cfg = assert(CONFIGS[name], "unknown config " .. tostring(name))
  local t_open = core.now()
  local ds = source == "memory" and assert(glow.data.fashion_mnist("train")) or assert(glow.data.open_pack(source))
  t_open = core.now() - t_open
  local model = glow.Glow { shape = cfg.shape, levels = cfg.levels, depth = cfg.depth, width = cfg.width }
  local opt = glow.optim.Adam(model, { lr = 1e-3 })
  local per_epoch = ds:size() // cfg.batch
  local done, t0, epoch = 0, nil, 0
  while done <= steps do
    for x in ds:batches { size = cfg.batch, shuffle = true, seed = 1, epoch = epoch, drop_last = true } do
      if done == 0 then model:initialize(x) end
      model:train_step(x, nil, opt)
      if done == 0 then t0 = core.now() end
      done = done + 1
      if done > steps then break end
    end
    epoch = epoch + 1
    assert(per_epoch > 0)
  end
  local dt = core.now() - t0
  print(json.encode { source = source, config = name, steps = steps, images = ds:size(),
    images_per_s = steps * cfg.batch / dt, open_s = t_open, peak_rss_mib = bench.peak_rss_mib() })
  os.exit(0)
end

local THREADS = 2

local function child(source, steps, name)
  return bench.run(string.format("OMP_NUM_THREADS=%d lua5.4 bench/stream.lua train '%s' %d %s", THREADS, source,
    steps, name))
end

if mode == "compare" then
  local rest = {}
  for i = 2, #arg do rest[#rest + 1] = arg[i] end
  local opts = bench.options("stream.lua compare", { reps = 3, steps = 20, threads = 2, out = "bench/out" }, rest)
  os.execute("mkdir -p '" .. opts.out .. "'")
  local path = opts.out .. "/fmnist-train.glowpack"
  if not file_size(path) then
    local t = core.now()
    local n = assert(glow.data.pack(assert(glow.data.fashion_mnist("train")), path))
    io.stderr:write(string.format("packed %d images into %s (%.1f MiB) in %.1f s\n", n, path,
      file_size(path) / 2 ^ 20, core.now() - t))
  end
  local env = "OMP_NUM_THREADS=" .. opts.threads .. " "
  local got = { memory = {}, pack = {} }
  local rss = { memory = {}, pack = {} }
  for r = 1, opts.reps do
    for _, side in ipairs { "memory", "pack" } do
      local v = bench.run(env .. string.format("lua5.4 bench/stream.lua train '%s' %d fmnist-small",
        side == "memory" and "memory" or path, opts.steps))
      got[side][#got[side] + 1] = v.images_per_s
      rss[side][#rss[side] + 1] = v.peak_rss_mib
      io.stderr:write(string.format("round %d, %s: %.2f images/s, peak RSS %.0f MiB\n", r, side, v.images_per_s,
        v.peak_rss_mib))
    end
  end
  local m, p = bench.median(got.memory), bench.median(got.pack)
  print(string.format("%s; %d threads; fmnist-small training on shuffled batches of 64; medians of %d alternating "
    .. "rounds of %d steps", bench.cpu_model(), opts.threads, opts.reps, opts.steps))
  print()
  print("| data | images/s | peak RSS MiB |")
  print("|---|---|---|")
  print(string.format("| in memory (fashion_mnist) | %.2f | %.0f |", m, bench.median(rss.memory)))
  print(string.format("| packed (open_pack) | %.2f | %.0f |", p, bench.median(rss.pack)))
  print()
  print(string.format("packed / in memory: %.3f", p / m))
  os.exit(0)
end

if mode == "big" then
  local rest = {}
  for i = 2, #arg do rest[#rest + 1] = arg[i] end
  local opts = bench.options("stream.lua big", { n = 200000, steps = 300, quick = 0, out = "bench/out",
    threads = 2, epoch = 0, config = "big64" }, rest)
  if opts.quick ~= 0 then opts.n, opts.steps = 5000, 5 end
  local cfg = assert(CONFIGS[opts.config], "unknown config " .. tostring(opts.config))
  -- --epoch 1: one whole shuffled epoch (the first, untimed step included)
  if opts.epoch ~= 0 then opts.steps = opts.n // cfg.batch - 1 end
  THREADS = opts.threads
  os.execute("mkdir -p '" .. opts.out .. "'")
  local path = string.format("%s/fmnist64-%d.glowpack", opts.out, opts.n)
  local size = file_size(path)
  if not size then
    local src = assert(glow.data.fashion_mnist("train"))
    local t = core.now()
    local n = assert(glow.data.pack(src, path, { size = 64, channels = 3, ["repeat"] = (opts.n + src:size() - 1)
      // src:size(), flip = true, limit = opts.n }))
    size = file_size(path)
    io.stderr:write(string.format("packed %d images of 64x64x3 into %s (%.2f GiB) in %.1f s\n", n, path,
      size / 2 ^ 30, core.now() - t))
  end
  local v = child(path, opts.steps, opts.config)
  print(string.format("%s; %d threads; a %d-image 64x64x3 pack (%.2f GiB), model %s, %d steps of batch %d on "
    .. "shuffled batches", bench.cpu_model(), opts.threads, v.images, size / 2 ^ 30,
    string.format("levels %d, depth %d, width %d", cfg.levels, cfg.depth, cfg.width), v.steps + 1, cfg.batch))
  print(string.format("open %.3f s; %.2f images/s; peak RSS %.0f MiB (%s 1 GiB)", v.open_s, v.images_per_s,
    v.peak_rss_mib, v.peak_rss_mib < 1024 and "under" or "OVER"))
  if v.peak_rss_mib >= 1024 then os.exit(1) end
  os.exit(0)
end

io.stderr:write("usage: lua5.4 bench/stream.lua compare|big [options]\n")
os.exit(2)
