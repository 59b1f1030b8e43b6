--- Run by spec/distributed_spec.lua, as one process or under mpirun:
---   lua5.4 spec/mpi/train.lua OUT STEPS [CHECKPOINT_EVERY] [PIDFILE_PREFIX|-] [RESUME]
--- trains a small model on a made-up dataset (global batch 64) through
--- glow.train.run for STEPS steps (1 thread per process), then rank 0 writes
--- the flat parameter vector to OUT (one %.9g per line). With
--- CHECKPOINT_EVERY it checkpoints to OUT.ckpt every so many steps; with
--- PIDFILE_PREFIX each rank writes its process id to PREFIX<rank>; with
--- RESUME it continues that checkpoint's run up to STEPS steps in all.
local glow = require "glow"
local dist = glow.distributed
if dist.launched() then dist.init() end
local out, steps = arg[1], math.tointeger(tonumber(arg[2]))
local every, pidfile, resume = tonumber(arg[3]), arg[4] ~= "-" and arg[4] or nil, arg[5]

if pidfile then
  local f = assert(io.open(pidfile .. dist.rank(), "w"))
  f:write(io.open("/proc/self/stat"):read("n"), "\n")
  f:close()
end

-- 256 structured 8x8 gray images as a Fashion-MNIST style IDX pair
local n = 256
local dir = os.tmpname()
os.remove(dir)
dir = dir .. "-" .. dist.rank()
assert(os.execute("mkdir -p '" .. dir .. "'"))
local img, lab = { string.pack(">I4I4I4I4", 0x803, n, 8, 8) }, { string.pack(">I4I4", 0x801, n) }
for i = 1, n do
  local label = (i * 7) % 4
  local px = {}
  for r = 0, 7 do
    for c = 0, 7 do
      local v = 30 + ((r * 3 + c + i) % 7) * 10
      if c == 2 * label or c == 2 * label + 1 then v = 200 + (r * 5 + i) % 50 end
      px[#px + 1] = string.char(v)
    end
  end
  img[#img + 1] = table.concat(px)
  lab[#lab + 1] = string.char(label)
end
for name, parts in pairs { ["train-images-idx3-ubyte"] = img, ["train-labels-idx1-ubyte"] = lab } do
  local f = assert(io.open(dir .. "/" .. name, "wb"))
  f:write(table.concat(parts))
  f:close()
end
local ds = assert(glow.data.fashion_mnist { split = "train", dir = dir })
os.execute("rm -rf '" .. dir .. "'")

local model = resume and assert(glow.load(resume))
  or glow.Glow { shape = { 8, 8, 1 }, levels = 2, depth = 2, width = 16, seed = 1 }
local result = glow.train.run { model = model, train = ds, test = ds, epochs = 100, batch = 64, lr = 2e-3,
  warmup = 2, seed = 3, progress = false, init_size = 64, max_steps = steps, eval = false,
  checkpoint = every and (out .. ".ckpt") or nil, checkpoint_every = every, resume = resume and true }
if dist.is_root() then
  local f = assert(io.open(out, "w"))
  local v = result.optimizer.value
  for i = 1, v:numel() do f:write(string.format("%.9g\n", v:get(i))) end
  f:close()
end
dist.finalize()
