--- Train Glow on Fashion-MNIST (or CIFAR-10, or a folder of PNGs), report
--- the full test set's bits/dim each epoch, write samples and a checkpoint.
---
---   lua5.4 examples/train.lua [--epochs 1] [--batch 64] [--lr 1e-3] [--warmup 200]
---       [--levels 2] [--depth 8] [--width 128] [--coupling affine] [--permutation invconv_lu]
---       [--optimizer adam] [--schedule wsd|cosine|linear|constant] [--decay-frac 0.2] [--clip 100]
---       [--polyak 0.999] [--memory auto|store|reversible]
---       [--seed 0] [--n-bits 8]
---       [--data fashion-mnist|cifar10|images] [--data-dir DIR] [--out DIR]
---       [--checkpoint-every N] [--resume CHECKPOINT] [--temperature 0.7] [--max-steps N]
---       [--eval-limit N] [--no-progress] [--no-learn-top]
---
--- Writes DIR/log.csv, DIR/checkpoint.safetensors and DIR/samples.png (out: "out").
---
--- Under mpirun (mpirun -np N lua5.4 examples/train.lua ...) it trains data
--- parallel through glow.distributed: --batch is the global batch, each rank
--- takes its share, and only rank 0 prints and writes files.
local glow = require "glow"
io.stdout:setvbuf("line")
local dist = glow.distributed
if dist.launched() then dist.init() end
local root = dist.is_root()
local function say(...) if root then print(...) end end

local defaults = {
  epochs = 1, batch = 64, lr = 1e-3, warmup = 200, levels = 2, depth = 8, width = 128,
  coupling = "affine", permutation = "invconv_lu", optimizer = "adam", clip = 100, polyak = 0.999,
  schedule = "wsd", ["decay-frac"] = 0.2,
  seed = 0, ["n-bits"] = 8, data = "fashion-mnist", ["data-dir"] = false, out = "out",
  ["checkpoint-every"] = 0, resume = false, temperature = 0.7, ["max-steps"] = 0,
  ["eval-limit"] = 0, ["no-progress"] = false, ["no-learn-top"] = false, memory = "auto",
}

local function usage(msg)
  io.stderr:write("examples/train.lua: ", msg, "\n(see the comment at the top of the file)\n")
  os.exit(2)
end

local opts = {}
for k, v in pairs(defaults) do opts[k] = v end
local i = 1
while i <= #arg do
  local key = arg[i]:match("^%-%-(.+)$")
  if not key or defaults[key] == nil then usage("unknown option " .. arg[i]) end
  if type(defaults[key]) == "boolean" and key ~= "data-dir" and key ~= "resume" then
    opts[key] = not defaults[key]
    i = i + 1
  else
    local v = arg[i + 1]
    if v == nil then usage("option --" .. key .. " needs a value") end
    if type(defaults[key]) == "number" then
      v = tonumber(v) or usage("option --" .. key .. " needs a number, got " .. v)
      if math.type(defaults[key]) == "integer" then
        v = math.tointeger(v) or usage("option --" .. key .. " needs an integer")
      end
    end
    opts[key] = v
    i = i + 2
  end
end

local function load_data(split)
  local ds, err
  if opts.data == "fashion-mnist" then
    ds, err = glow.data.fashion_mnist { split = split, dir = opts["data-dir"] or nil }
  elseif opts.data == "cifar10" then
    ds, err = glow.data.cifar10(opts["data-dir"] or usage("--data cifar10 needs --data-dir"), split)
  elseif opts.data == "images" then
    ds, err = glow.data.images((opts["data-dir"] or usage("--data images needs --data-dir")) .. "/" .. split)
  else
    usage("unknown data " .. tostring(opts.data))
  end
  if not ds then
    io.stderr:write("examples/train.lua: ", err, "\n")
    os.exit(1)
  end
  return ds
end

if opts.memory ~= "auto" and opts.memory ~= "store" and opts.memory ~= "reversible" then
  usage("option --memory must be auto, store or reversible, got " .. opts.memory)
end
local train, test = load_data("train"), load_data("test")
do -- the output folder, or one line saying why it cannot be made
  local p = io.popen("mkdir -p -- '" .. opts.out:gsub("'", "'\\''") .. "' 2>&1")
  local said = p and p:read("a"):gsub("%s+$", "") or "cannot run mkdir"
  if not p or not p:close() then
    io.stderr:write("examples/train.lua: cannot make the output folder ", opts.out,
      said ~= "" and " (" .. said .. ")" or "", "\n")
    os.exit(1)
  end
end
local ckpt = opts.out .. "/checkpoint.safetensors"

local model
if opts.resume then
  local err
  model, err = glow.load(opts.resume)
  if not model then
    io.stderr:write("examples/train.lua: ", err, "\n")
    os.exit(1)
  end
  model.config.memory = opts.memory -- how to train is not part of the checkpoint
else
  model = glow.Glow {
    shape = train:shape(), levels = opts.levels, depth = opts.depth, width = opts.width,
    coupling = opts.coupling, permutation = opts.permutation, learn_top = not opts["no-learn-top"],
    n_bits = opts["n-bits"], seed = opts.seed, memory = opts.memory,
  }
end

local info = glow.info()
say(string.format("glow: %d train / %d test images %s; kernels %s, OpenBLAS kernel %s, %d threads%s",
  train:size(), test:size(), table.concat(train:shape(), "x"), info.isa, info.blas_kernel, info.omp_threads,
  dist.size() > 1 and string.format(" x %d MPI ranks", dist.size()) or ""))
local t0 = glow.core.now()
local ok, result = pcall(glow.train.run, {
  model = model, train = train, test = test, epochs = opts.epochs, batch = opts.batch, lr = opts.lr,
  warmup = opts.warmup, schedule = opts.schedule, optimizer = opts.optimizer,
  decay_frac = opts.schedule == "wsd" and opts["decay-frac"] or nil,
  clip = opts.clip > 0 and opts.clip or nil,
  polyak = opts.polyak > 0 and opts.polyak or nil, seed = opts.seed,
  log = opts.out .. "/log.csv", checkpoint = ckpt,
  checkpoint_every = opts["checkpoint-every"] > 0 and opts["checkpoint-every"] or nil,
  resume = opts.resume and true or nil, max_steps = opts["max-steps"] > 0 and opts["max-steps"] or nil,
  eval_limit = opts["eval-limit"] > 0 and opts["eval-limit"] or nil,
  progress = not opts["no-progress"] and "auto" or false,
})
if not ok then -- bad settings, an unwritable path, training that cannot go on: one line, exit 1
  io.stderr:write("examples/train.lua: ", tostring(result), "\n")
  if os.getenv("GLOW_TRACEBACK") then io.stderr:write(debug.traceback(), "\n") end
  os.exit(1)
end
for _, e in ipairs(result.epochs) do
  say(string.format("epoch %d: test bits/dim %.4f (train %.4f), %.0f s", e.epoch, e.test_bpd or 0 / 0,
    e.train_bpd or 0 / 0, e.epoch_s))
end
if result.final_test_bpd then
  say(string.format("test bits/dim: %.4f (%d test images)", result.final_test_bpd,
    opts["eval-limit"] > 0 and math.min(opts["eval-limit"], test:size()) or test:size()))
end
if not root then
  dist.finalize()
  return
end
local samples = result.optimizer:with_average(function()
  return model:sample(64, { temperature = opts.temperature, seed = opts.seed + 1 })
end)
local saved, err = glow.image.save_grid(opts.out .. "/samples.png", samples, { cols = 8 })
if not saved then
  io.stderr:write("examples/train.lua: ", err, "\n")
  os.exit(1)
end
print(string.format("wrote %s/samples.png (temperature %.2f), %s, %s/log.csv; %d steps in %.0f s",
  opts.out, opts.temperature, ckpt, opts.out, result.run_steps, glow.core.now() - t0))
dist.finalize()
