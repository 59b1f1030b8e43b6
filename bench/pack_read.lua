--- Reading batches out of a pack (docs/DATA.md, "Sets larger than memory"):
--- the time of one Dataset:batch of --size images, shuffled and in file
--- order. By default the pack is Fashion-MNIST's train set (28x28x1, packed
--- once into --out), against the same batches from the set in memory;
--- --pack PATH times another pack alone. The file is in the page cache (one
--- untimed pass first); each round times --batches batches, and the figures
--- are the medians over --rounds rounds. GLOW_PACK_READ=pread in the
--- environment reads with pread instead of out of the mapping.
---
---   LUA_PATH="lua/?.lua;lua/?/init.lua;bench/?.lua;;" LUA_CPATH="build/?.so;;" \
---     lua5.4 bench/pack_read.lua [--rounds 9] [--batches 200] [--size 256] [--out bench/out] [--pack PATH]
local glow = require "glow"
local bench = require "bench_util"
local core = glow.core

local opts = bench.options("pack_read.lua", { rounds = 9, batches = 200, size = 256, out = "bench/out", pack = "" },
  arg)
local sets = {}
if opts.pack ~= "" then
  sets[1] = { "pack", assert(glow.data.open_pack(opts.pack)) }
else
  os.execute("mkdir -p '" .. opts.out .. "'")
  local path = opts.out .. "/fmnist-train.glowpack"
  local mem = assert(glow.data.fashion_mnist("train"))
  if not io.open(path, "rb") then assert(glow.data.pack(mem, path)) end
  sets[1] = { "pack", assert(glow.data.open_pack(path)) }
  sets[2] = { "memory", mem }
end
local n, b = sets[1][2]:size(), opts.size

local function time(ds, shuffled, round)
  local order = shuffled and core.permutation(n, 1, round) or nil
  local t0, at = core.now(), 1
  for _ = 1, opts.batches do
    if at + b - 1 > n then at = 1 end
    local idx = {}
    for k = 1, b do idx[k] = order and order[at + k - 1] or at + k - 1 end
    ds:batch(idx, { seed = 1, epoch = round })
    at = at + b
  end
  return (core.now() - t0) / opts.batches * 1e3
end

local got, keys = {}, {}
for _, set in ipairs(sets) do time(set[2], false, 0) end -- the page cache, untimed
for r = 1, opts.rounds do
  for _, shuffled in ipairs { true, false } do
    for _, set in ipairs(sets) do
      local key = set[1] .. (shuffled and ", shuffled" or ", in order")
      if not got[key] then
        got[key] = {}
        keys[#keys + 1] = key
      end
      got[key][r] = time(set[2], shuffled, r)
    end
  end
end
print(string.format("%s; batches of %d images of %s, %d threads, %s; medians of %d rounds of %d batches",
  bench.cpu_model(), b, table.concat(sets[1][2]:shape(), "x"), core.threads(),
  os.getenv("GLOW_PACK_READ") == "pread" and "pread" or "default reader", opts.rounds, opts.batches))
print()
print("| data | ms per batch (median) | min | max |")
print("|---|---|---|---|")
for _, key in ipairs(keys) do
  local t = got[key]
  print(string.format("| %s | %.3f | %.3f | %.3f |", key, bench.median(t), math.min(table.unpack(t)),
    math.max(table.unpack(t))))
end
