--- The small `glow` subcommands: sample, encode, decode, info, plot, pack.
local glow = require "glow"
local C = require "glow.cli.common"

local M = {}

---------------------------------------------------------------------- sample
--- The format of the grid file out, from its name (glow.image.format_of):
--- any name but .png, .jpg and .jpeg is a usage error, before any work.
local function grid_format(prog, out)
  local format = glow.image.format_of(out)
  if not format then
    local ext = out:match("%.([^./]+)$")
    C.usage_error(prog, "cannot write %s: %s; the grid is written as PNG (.png) or JPEG (.jpg, .jpeg)", out,
      ext and ("." .. ext .. " is not a format glow writes") or "its name has no extension")
  end
  return format
end

M.sample = {
  description = "Sample images from a checkpoint at a temperature, as a PNG or JPEG grid (by the file's name).",
  ARGS = { { "checkpoint", "a checkpoint (.safetensors)" }, { "out", "the grid to write: .png, .jpg or .jpeg" } },
  SPEC = {
    n = { "int", 64, min = 1, max = 4096, short = "-n", help = "number of samples" },
    temperature = { "number", 0.7, min = 0, short = "-t", help = "temperature (1: the model's own spread)" },
    y = { "string", short = "-y", meta = "<labels>",
      help = "class label(s) of a conditional model (glow info names its classes): one, or a comma-separated list "
        .. "repeated [default: random]" },
    seed = { "int", 0, min = 0, help = "seed of the draws" },
    cols = { "int", 8, min = 1, help = "images per row of the grid" },
    scale = { "int", 1, min = 1, max = 64, meta = "<K>",
      help = "enlarge each image K times (nearest neighbour: each pixel a KxK block)" },
    ["no-average"] = { "flag", help = "the raw weights, not the checkpoint's Polyak average" },
    data = { "string", help = "where a model file's conditional model takes its conditioning input from: the "
      .. "first n images' [default: the run's test set]" },
  },
}

--- The conditioning input of n samples of a model file's conditional
--- model: the first n images of --data (or of the run's recorded test set).
local function sample_condition(prog, model, opts)
  local tr = model.checkpoint and model.checkpoint.trainer
  local rec = type(tr) == "table" and type(tr.record) == "table" and tr.record or {}
  local name = opts.data or rec.test or rec.data
  if type(name) ~= "string" then
    C.usage_error(prog, "the model takes a conditioning input: give --data DATA to take it from its images")
  end
  local s = model.config.shape
  local ds = C.load_data(prog, name, "test", { size = { s[1], s[2] }, channels = s[3] })
  local idx = {}
  for i = 1, opts.n do idx[i] = (i - 1) % ds:size() + 1 end
  local x, y = ds:batch(idx, { n_bits = model.config.n_bits, seed = opts.seed })
  return model.condition(x, y)
end

function M.sample.run(opts)
  local prog = "glow sample"
  grid_format(prog, opts.args.out)
  C.check_writable(prog, opts.args.out)
  local model = C.load_model(prog, opts.args.checkpoint, not opts["no-average"], opts)
  local y
  if opts.y then
    if not model.config.classes then
      C.usage_error(prog, "option -y: the checkpoint's model is not class-conditional")
    end
    y = C.labels(prog, opts.y, opts.n, model.config.classes)
  end
  C.check_memory(prog, opts.n, model.config.shape, "sampling", "lower -n")
  if model.condition then y = sample_condition(prog, model, opts) end
  local x = model:sample(opts.n, { temperature = opts.temperature, y = y, seed = opts.seed })
  C.prepare_output(prog, opts.args.out)
  local ok, err = glow.image.save_grid(opts.args.out, x, { cols = opts.cols, scale = opts.scale })
  if not ok then C.fail(prog, "%s", err) end
  print(string.format("wrote %s: %d samples at temperature %g", opts.args.out, opts.n, opts.temperature))
end

---------------------------------------------------------------------- encode
M.encode = {
  description = "Encode a data set into its latents: a safetensors file z1..zL (outermost first), logdet, y.",
  ARGS = { { "checkpoint", "a checkpoint (.safetensors)" },
    { "data", "fashion-mnist[:split], cifar10:DIR[:split], a folder or a .glowpack file (default split: test)" },
    { "out", "the safetensors file of latents to write" } },
  SPEC = {
    limit = { "int", 64, min = 1, help = "encode the first N images" },
    seed = { "int", 0, min = 0, help = "seed of the dequantization noise" },
    ["no-noise"] = { "flag", help = "no dequantization noise: each pixel at the centre of its bin" },
    ["no-average"] = { "flag", help = "the raw weights, not the checkpoint's Polyak average" },
    background = C.BACKGROUND,
    ["max-pixels"] = C.MAX_PIXELS,
  },
}

function M.encode.run(opts)
  local prog = "glow encode"
  C.check_folder_options(prog, opts)
  C.check_folder_options(prog, opts, (C.data_kind(prog, opts.args.data, "test")), opts.args.data)
  C.check_writable(prog, opts.args.out)
  local model = C.load_model(prog, opts.args.checkpoint, not opts["no-average"], opts)
  local s = model.config.shape
  C.check_memory(prog, opts.limit, s, "encoding", "lower --limit")
  C.check_shape(prog, opts.args.data, "test", s)
  local ds = C.load_data(prog, opts.args.data, "test", { size = { s[1], s[2] }, channels = s[3],
    background = opts.background, max_pixels = opts["max-pixels"] })
  local n = math.min(opts.limit, ds:size())
  local idx = {}
  for i = 1, n do idx[i] = i end
  local x, y = ds:batch(idx, { n_bits = model.config.n_bits, seed = opts.seed, noise = not opts["no-noise"] })
  local cond = model.condition and model.condition(x, y) or nil
  local zs, logdet = model:encode(x, cond or (model.config.classes and y or nil))
  local tensors = {}
  for i, z in ipairs(zs) do tensors[i] = { name = "z" .. i, value = z } end
  tensors[#tensors + 1] = { name = "logdet", value = logdet }
  -- a model file's conditioning input, which decode needs again
  if cond then tensors[#tensors + 1] = { name = "cond", value = cond } end
  if y then
    local t = glow.Tensor { n }
    for i = 1, n do t:set(i, y[i]) end
    tensors[#tensors + 1] = { name = "y", value = t }
  end
  C.prepare_output(prog, opts.args.out)
  local ok, err = glow.checkpoint.write(opts.args.out, tensors, { format = "glow-latents",
    checkpoint = opts.args.checkpoint, data = opts.args.data, images = tostring(n) })
  if not ok then C.fail(prog, "%s", err) end
  print(string.format("wrote %s: %d latents (%s)", opts.args.out, #zs, (function()
    local parts = {}
    for i, z in ipairs(zs) do parts[i] = "z" .. i .. " " .. table.concat(z:shape(), "x") end
    return table.concat(parts, ", ")
  end)()))
end

---------------------------------------------------------------------- decode
M.decode = {
  description = "Decode a safetensors file of latents (as glow encode writes) into images, as a PNG or JPEG grid.",
  ARGS = { { "checkpoint", "a checkpoint (.safetensors)" }, { "latents", "the latents (.safetensors)" },
    { "out", "the grid to write: .png, .jpg or .jpeg" } },
  SPEC = {
    cols = { "int", 8, min = 1, help = "images per row of the grid" },
    scale = { "int", 1, min = 1, max = 64, meta = "<K>",
      help = "enlarge each image K times (nearest neighbour: each pixel a KxK block)" },
    ["no-average"] = { "flag", help = "the raw weights, not the checkpoint's Polyak average" },
  },
}

function M.decode.run(opts)
  local prog = "glow decode"
  grid_format(prog, opts.args.out)
  C.check_writable(prog, opts.args.out)
  local model = C.load_model(prog, opts.args.checkpoint, not opts["no-average"], opts)
  local t, err = glow.checkpoint.read(opts.args.latents)
  if not t then C.fail(prog, "%s", err) end
  local zs = {}
  local L = model.n_splits + 1
  for i = 1, L do
    zs[i] = t["z" .. i]
    if not zs[i] then
      C.fail(prog, "%s holds no latent z%d: the checkpoint's model has %d levels (z1..z%d)", opts.args.latents, i,
        L, L)
    end
  end
  local y
  if model.condition then
    y = t.cond
    if not y then
      C.fail(prog, "%s holds no conditioning input 'cond', which the model file's model needs", opts.args.latents)
    end
  elseif model.config.classes then
    if not t.y then C.fail(prog, "%s holds no labels y, which the class-conditional model needs", opts.args.latents) end
    y = {}
    for i, v in ipairs(t.y:totable()) do y[i] = math.tointeger(v) or math.floor(v) end
  end
  local ok, x = pcall(model.decode, model, zs, y)
  if not ok then C.fail(prog, "%s: %s", opts.args.latents, tostring(x)) end
  C.prepare_output(prog, opts.args.out)
  local saved, why = glow.image.save_grid(opts.args.out, x, { cols = opts.cols, scale = opts.scale })
  if not saved then C.fail(prog, "%s", why) end
  print(string.format("wrote %s: %d images", opts.args.out, x:shape()[1]))
end

------------------------------------------------------------------------ info
M.info = {
  description = "A checkpoint's configuration, classes, parameter count and training position.",
  ARGS = { { "checkpoint", "a checkpoint (.safetensors)" } },
  SPEC = {},
}

local function sorted_pairs(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local i = 0
  return function()
    i = i + 1
    if keys[i] ~= nil then return keys[i], t[keys[i]] end
  end
end

local function show(v)
  if type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = tostring(x) end
    return #parts > 0 and table.concat(parts, "x") or "{}"
  end
  return tostring(v)
end

function M.info.run(opts)
  local prog = "glow info"
  local model = C.load_model(prog, opts.args.checkpoint, false, opts)
  local count = 0
  for _, p in ipairs(model:parameters()) do count = count + p.value:numel() end
  print(string.format("checkpoint %s", opts.args.checkpoint))
  print("model:")
  for k, v in sorted_pairs(model.config) do
    if type(v) ~= "function" then print(string.format("  %-12s %s", k, show(v))) end
  end
  local names = C.class_names(model)
  if names then
    local shown = table.move(names, 1, math.min(#names, 20), 1, {})
    print(string.format("  %-12s %s%s", "class_names", table.concat(shown, ", "),
      #names > #shown and string.format(", ... (%d in all)", #names) or ""))
  end
  print(string.format("  %-12s %d (%d tensors)", "parameters", count, #model:parameters()))
  if model.model_file then
    local mf = model.model_file
    local keys = {}
    for k in pairs(mf.options) do keys[#keys + 1] = k end
    table.sort(keys)
    for i, k in ipairs(keys) do keys[i] = k .. "=" .. tostring(mf.options[k]) end
    print(string.format("  %-12s %s (sha256 %s)", "model file", mf.file, mf.sha256))
    print(string.format("  %-12s %s", "options", #keys > 0 and table.concat(keys, " ") or "(none)"))
  end
  local info = model.checkpoint or {}
  local tr = info.trainer
  if tr then
    local st = tr.settings or {}
    print("training:")
    local done = (tr.epoch or 1) - 1
    local with_model = model.model_file and (" --model " .. C.shell_quote(opts.model)) or ""
    if st.epochs and done >= st.epochs then
      print(string.format("  finished: %d epochs, %d steps (extend it: glow train --resume %s%s --epochs %d)",
        done, tr.step, C.shell_quote(opts.args.checkpoint), with_model, done + 1))
    else
      print(string.format("  position: epoch %d of %s, batch %d; %d steps done", tr.epoch, tostring(st.epochs or "?"),
        tr.batch, tr.step))
    end
    if tr.stage_start then print(string.format("  schedule stage from step %d (an extended run)", tr.stage_start)) end
    if tr.wall then print(string.format("  wall time: %.0f s", tr.wall)) end
    for k, v in sorted_pairs(st) do print(string.format("  %-12s %s", k, show(v))) end
  else
    print("training: no trainer state (saved by model:save without a run)")
  end
  print("Polyak average: " .. ((info.tensors or {})["optim.ema"] and "yes" or "no"))
end

------------------------------------------------------------------------ plot
M.plot = {
  description = "Draw the training curve of a log.csv (written by glow train) into a PNG, through gnuplot.",
  ARGS = { { "log", "the log.csv of a run" }, { "out", "the PNG to write" } },
  SPEC = {
    title = { "string", help = "the plot's title [default: the log's path]" },
    logy = { "flag", help = "a logarithmic bits/dim axis" },
    range = { "string", meta = "<LO:HI>", help = "the bits/dim axis's range (LO: or :HI sets one end) [default: the "
      .. "1st to 99th percentile of the values, widened by a quarter each side; skipped steps are left out]" },
  },
}

function M.plot.run(opts)
  local prog = "glow plot"
  local plot = require "glow.plot"
  local range = C.range_option(prog, opts.range)
  if range and opts.logy and range[1] and range[1] <= 0 then
    C.usage_error(prog, "option --range %s: --logy needs LO > 0", opts.range)
  end
  C.check_writable(prog, opts.args.out)
  C.prepare_output(prog, opts.args.out)
  local ok, err = plot.curve(opts.args.log, opts.args.out, { title = opts.title or opts.args.log, logy = opts.logy,
    range = range })
  if not ok then C.fail(prog, "%s", err) end
  print("wrote " .. opts.args.out)
end

------------------------------------------------------------------------ pack
M.pack = {
  description = "Pack a data set once into a file of uint8 images read a batch at a time, for sets larger "
    .. "than memory.",
  ARGS = { { "data", "a folder of PNG/JPEG images, fashion-mnist[:split] or cifar10:DIR[:split]" },
    { "out", "the .glowpack file to write (a folder with train/ and test/ and no --split: OUT-train.glowpack and "
      .. "OUT-test.glowpack)" } },
  SPEC = {
    size = { "int", min = 2, help = "image size (h = w) [default: the first image's]" },
    channels = { "int", choices = { 1, 3 }, help = "1 (gray) or 3 (RGB) [default: the first image's]" },
    strict = { "flag", help = "a corrupt or unreadable image is an error instead of being skipped" },
    background = C.BACKGROUND,
    ["max-pixels"] = C.MAX_PIXELS,
    split = { "string", choices = { "train", "test" },
      help = "the split to pack: of a named set [default: train], or a folder's train/ or test/ [default: both, "
        .. "each into its own file]" },
  },
}

--- OUT less its .glowpack, with "-split.glowpack": the pack of one split.
local function split_path(out, split)
  return (out:gsub("%.glowpack$", "")) .. "-" .. split .. ".glowpack"
end

local function describe_pack(path, ds)
  return string.format("%s: %d images of %s%s", path, ds:size(), table.concat(ds:shape(), "x"),
    ds.classes and string.format(", %d classes", ds.classes) or "")
end

function M.pack.run(opts)
  local prog = "glow pack"
  -- Ctrl-C or SIGTERM (from here on, loading included) stops the pack
  -- between two images; its temporary file is removed (SIGKILL cannot be
  -- caught: the next glow pack to OUT removes what it left)
  glow.core.trap_signals()
  local lfs = require "lfs"
  local data, out = opts.args.data, opts.args.out
  local kind, where = C.data_kind(prog, data, opts.split or "train")
  if kind == "pack" then C.usage_error(prog, "%s is already a packed file", data) end
  C.check_folder_options(prog, opts)
  C.check_folder_options(prog, opts, kind, data)
  -- what to pack where: a folder holding train/ or test/ is a set of splits
  -- (packed into one file each unless --split picks one), never a set whose
  -- classes are "test" and "train"
  local jobs = {}
  if kind == "folder" then
    local splits = {}
    for _, sp in ipairs { "train", "test" } do
      if lfs.attributes(where .. "/" .. sp, "mode") == "directory" then splits[#splits + 1] = sp end
    end
    if opts.split then
      if #splits == 0 then
        C.usage_error(prog, "option --split %s: %s holds no train/ or test/ folder (leave --split out to pack it as "
          .. "it is)", opts.split, data)
      elseif lfs.attributes(where .. "/" .. opts.split, "mode") ~= "directory" then
        C.usage_error(prog, "option --split %s: %s holds %s/ but no %s/", opts.split, data, splits[1], opts.split)
      end
      jobs[1] = { source = where .. "/" .. opts.split, out = out }
    elseif #splits > 0 then
      for i, sp in ipairs(splits) do
        jobs[i] = { source = where .. "/" .. sp, out = split_path(out, sp), split = sp }
      end
    else
      jobs[1] = { source = where, out = out }
    end
  end
  for _, job in ipairs(#jobs > 0 and jobs or { { out = out } }) do
    C.check_writable(prog, job.out)
    -- the temporary files of packs into OUT whose process is gone (killed
    -- with SIGKILL, or the machine went down): OUT.tmp.PID.XXXXXX, unlocked
    local stale, serr = glow.core.pack_remove_stale(job.out)
    if not stale then C.fail(prog, "%s", serr) end
    for _, st in ipairs(stale) do io.stderr:write(string.format("%s: removed %s (%s)\n", prog, st.path, st.reason)) end
  end
  if kind ~= "folder" then jobs[1] = { source = C.load_data(prog, data, opts.split or "train"), out = out } end
  local o = { size = opts.size, channels = opts.channels, strict = opts.strict or nil,
    background = kind == "folder" and opts.background or nil,
    max_pixels = kind == "folder" and opts["max-pixels"] or nil }
  local wrote = {}
  for i, job in ipairs(jobs) do
    C.prepare_output(prog, job.out)
    local ok, err = glow.data.pack(job.source, job.out, o)
    local sig = glow.core.interrupted()
    if sig and not ok then
      io.stderr:write(string.format("%s: %s: stopped; nothing written to %s\n", prog,
        sig == 15 and "SIGTERM" or "SIGINT", job.out))
      os.exit(130)
    end
    if not ok then C.fail(prog, "%s", err) end
    local ds = glow.data.open_pack(job.out)
    if not ds then C.fail(prog, "cannot reopen %s", job.out) end
    wrote[i] = describe_pack(job.out, ds)
    -- the next split at the first one's shape, so a model trained on one takes the other
    local st = ds:stored_shape()
    o.size, o.channels = { st[1], st[2] }, st[3]
  end
  if #jobs == 1 then
    print("wrote " .. wrote[1])
  else
    local names = {}
    for i, job in ipairs(jobs) do names[i] = job.split .. "/" end
    print(string.format("wrote %s (the splits %s of %s; --split train or --split test packs one)",
      table.concat(wrote, "; "), table.concat(names, " and "), data))
  end
end

for _, name in ipairs { "sample", "encode", "decode", "info" } do
  for k, v in pairs(C.MODEL_OPTIONS) do M[name].SPEC[k] = v end
end

return M
