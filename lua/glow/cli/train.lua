--- `glow train`: train Glow on Fashion-MNIST, CIFAR-10, a folder of images
--- or a packed set; report the test set's bits/dim each epoch; write
--- OUT/checkpoint.safetensors, OUT/log.csv, OUT/samples.png and
--- OUT/curve.png (the training curve, when gnuplot is there).
---
--- Under mpirun it trains data parallel through glow.distributed: --batch is
--- the global batch, each rank takes its share, and only rank 0 prints and
--- writes files.
---
--- --classes trains the class-conditional model (glow.Glow's classes and
--- class_weight: a top prior conditioned on the label, a classification
--- head) on the training set's labels: a folder's class subfolders, or a
--- named set's classes; the class count and names come from it, and the
--- names are recorded in the checkpoint's trainer state.
---
--- --resume CKPT continues a run exactly where its checkpoint stopped, or
--- extends a finished run with more --epochs (see glow.train.run: a decaying
--- schedule starts a new stage over the added steps). The model comes from
--- the checkpoint: an architecture option that contradicts it is refused.
--- The checkpoint records the command's options (the data, the test set,
--- the epochs, ...): an option left out on --resume takes its recorded value.
---
--- --model FILE trains a model written in Lua (glow.modelfile) instead of
--- glow.Glow, with --model-option key=value for the options it declares.
---
--- While it trains, OUT/samples.png (with the Polyak average, as at the
--- end) and OUT/curve.png are rewritten after each checkpoint, and every N
--- steps with --sample-every N, so a run can be watched; each file is
--- written beside its place and renamed over it. The samples use their own
--- seed: the run's parameters end bitwise as they would without them. Their
--- tiles are enlarged (--sample-scale K; by default the smallest K that
--- makes a tile at least 64 pixels: 3 for 28x28, 2 for 32x32, 1 from 64).
---
--- The first SIGINT or SIGTERM ends the run after the current step: the
--- checkpoint is written, one line gives the command that resumes, and the
--- exit code is 130. A second one ends the process at once.
local glow = require "glow"
local C = require "glow.cli.common"

local M = {}
local PROG = "glow train"

M.description = "Train Glow on a data set; report test bits/dim; write a checkpoint, a log, samples and a curve."

--- The model's options: checked against the checkpoint on --resume.
local ARCH = {
  levels = { "int", 2, min = 1, max = 16, help = "levels of the multi-scale model (each halves h and w)" },
  depth = { "int", 8, min = 1, help = "flow steps per level" },
  width = { "int", 128, min = 1, help = "channels of each coupling's network" },
  coupling = { "string", "affine", choices = { "affine", "additive" }, help = "coupling layer" },
  permutation = { "string", "invconv_lu", choices = { "invconv_lu", "invconv", "shuffle", "reverse" },
    help = "channel permutation" },
  ["n-bits"] = { "int", 8, min = 1, max = 8, help = "bits per colour channel the model sees" },
  ["no-learn-top"] = { "flag", help = "a standard normal top prior instead of a learned one" },
  classes = { "flag", help = "class-conditional: a top prior conditioned on the training set's labels (a folder's "
    .. "class subfolders, Fashion-MNIST's or CIFAR-10's classes) and a classification head" },
  ["class-weight"] = { "number", 0.01, min = 0, help = "weight of the classification loss (with --classes)" },
}
M.ARCH = ARCH
local ARCH_KEY = { levels = "levels", depth = "depth", width = "width", coupling = "coupling",
  permutation = "permutation", ["n-bits"] = "n_bits", ["class-weight"] = "class_weight" }

--- Folder options (images resized and cropped to the model's size).
M.FOLDER = {
  size = { "int", help = "image size (h = w) the model sees [default: the first image's, or the checkpoint's]",
    min = 2 },
  channels = { "int", choices = { 1, 3 }, help = "1 (gray) or 3 (RGB) [default: the first image's]" },
  ["load-size"] = { "int", min = 2, help = "size images are resized to before the crop [default: --size]" },
  crop = { "string", "center", choices = { "center", "random" }, help = "which --size window of a loaded image" },
  flip = { "flag", help = "random horizontal flips (seeded; restored on --resume)" },
  strict = { "flag", help = "a corrupt or unreadable image is an error instead of being skipped" },
  background = C.BACKGROUND,
  ["max-pixels"] = C.MAX_PIXELS,
}

M.SPEC = {
  data = { "string", "fashion-mnist", help = "fashion-mnist, cifar10:DIR, a folder, or a .glowpack file" },
  test = { "string", help = "the test set [default: the test split of --data, or DIR/test]" },
  epochs = { "int", 1, min = 1, help = "epochs to train (with --resume: the total, which may grow)" },
  batch = { "int", 64, min = 1, help = "images per step (the global batch under mpirun)" },
  lr = { "number", 1e-3, above = 0, help = "peak learning rate" },
  warmup = { "int", 200, min = 0, help = "steps of linear warmup" },
  schedule = { "string", "wsd", choices = { "wsd", "cosine", "linear", "constant" },
    help = "learning-rate schedule after the warmup" },
  ["decay-frac"] = { "number", 0.2, above = 0, max = 1, help = "share of the steps a wsd schedule decays over" },
  optimizer = { "string", "adam", choices = { "adam", "adamax", "sgd" }, help = "the optimizer" },
  clip = { "number", 100, min = 0, help = "clip the gradient's global norm (0: off)" },
  polyak = { "number", 0.999, min = 0, max = 0.999999, help = "Polyak averaging decay (0: off)" },
  memory = { "string", "auto", choices = { "auto", "store", "reversible" },
    help = "store activations, or rebuild them by inverses" },
  seed = { "int", 0, min = 0, help = "seed of the model, the data order and the noise" },
  ["init-size"] = { "int", 256, min = 1, help = "images (drawn at random) for the ActNorm initialization" },
  ["max-bpd"] = { "number", 100, above = 0, help = "a step above this train bits/dim counts as exploding" },
  out = { "string", "out", help = "output folder [default: out, or the checkpoint's folder on --resume]" },
  ["checkpoint-every"] = { "string", "10m", meta = "<N|time>",
    help = "also checkpoint every N steps, or every 30s / 10m / 1h (0: only at each epoch's end and the end)" },
  model = { "string", meta = "<file.lua>",
    help = "train the model a Lua model file builds instead of glow.Glow (docs/PROTOTYPING.md)" },
  ["model-option"] = { "list", meta = "<key=value>", help = "an option the model file declares (repeatable)" },
  ["model-changed-ok"] = { "flag", help = "on --resume, accept a model file whose SHA-256 differs from the recorded" },
  force = { "flag", help = "start a new run in an --out folder that holds another run's checkpoint (replaced)" },
  resume = { "string", help = "continue or extend the run of this checkpoint" },
  temperature = { "number", 0.7, min = 0, help = "temperature of the samples written during and at the end" },
  ["sample-every"] = { "int", 0, min = 0, meta = "<N>",
    help = "also rewrite OUT/samples.png and OUT/curve.png every N steps (0: only at each checkpoint and the end)" },
  ["sample-scale"] = { "int", 0, min = 0, max = 64, meta = "<K>",
    help = "enlarge each sample K times, nearest neighbour (0: the smallest K making a tile at least 64 pixels)" },
  ["max-steps"] = { "int", 0, min = 0, help = "stop after N steps in all (0: no limit)" },
  ["eval-limit"] = { "int", 0, min = 0, help = "evaluate on the first N test images (0: all)" },
  ["no-progress"] = { "flag", help = "no progress line" },
}
for k, v in pairs(ARCH) do M.SPEC[k] = v end
for k, v in pairs(M.FOLDER) do M.SPEC[k] = v end

--- The folder options of opts, for glow.data.images (nil when none apply).
function M.folder_options(opts, shape)
  local size = opts.size or (shape and shape[1])
  return { size = size and (shape and { shape[1], shape[2] } or size) or nil,
    channels = opts.channels or (shape and shape[3]) or nil,
    load_size = opts["load-size"], crop = opts.crop, flip = opts.flip or nil, strict = opts.strict or nil,
    background = opts.background, max_pixels = opts["max-pixels"] }
end

--- The configuration of a new model for images of shape (and classes, the
--- training set's class count, with --classes), checked by glow.Glow's own
--- checks (an image size the levels cannot squeeze, ...): a failed check is
--- a usage error.
function M.model_config(opts, shape, classes)
  local cfg = { shape = shape, levels = opts.levels, depth = opts.depth, width = opts.width,
    coupling = opts.coupling, permutation = opts.permutation, learn_top = not opts["no-learn-top"],
    n_bits = opts["n-bits"], seed = opts.seed, memory = opts.memory, classes = classes,
    class_weight = classes and opts["class-weight"] or nil }
  local ok, err = pcall(require("glow.config").check, cfg)
  if not ok then
    err = tostring(err):gsub("^glow%.Glow: ", "")
    if err:find("cannot be squeezed", 1, true) then err = err .. "; choose fewer --levels, or --size for a folder" end
    C.usage_error(PROG, "%s", err)
  end
  return cfg
end

--- The model: from the checkpoint on --resume (where an architecture
--- option given must agree with it), else a new glow.Glow (class-
--- conditional on classes labels with --classes).
local function make_model(opts, shape, model, classes)
  if model then -- resumed: the options were checked against it (resume_options)
    local cfg = model.config
    if shape and (shape[1] ~= cfg.shape[1] or shape[2] ~= cfg.shape[2] or shape[3] ~= cfg.shape[3]) then
      C.usage_error(PROG, "the data's images are %s, the checkpoint's model takes %s", table.concat(shape, "x"),
        table.concat(cfg.shape, "x"))
    end
    cfg.memory = opts.memory -- how to train is not part of the checkpoint
    return model
  end
  if opts.model then
    local mf = require "glow.modelfile"
    local ok, spec = pcall(mf.load, opts.model)
    if not ok then C.fail(PROG, "%s", tostring(spec)) end
    local good, values = pcall(mf.options, spec, opts["model-option"], PROG)
    if not good then C.usage_error(PROG, "%s", tostring(values)) end
    local built, m = pcall(mf.build, spec, values, { shape = shape, seed = opts.seed, n_bits = opts["n-bits"],
      classes = classes, class_weight = classes and opts["class-weight"] or nil })
    if not built then C.fail(PROG, "%s", tostring(m)) end
    if classes and m.config.classes ~= classes then
      C.usage_error(PROG, "option --classes: the model file %s built a model for %s classes, the data has %d (its "
        .. "builder must pass o.classes on to glow.Model's config)", opts.model, tostring(m.config.classes), classes)
    end
    m.config.memory = opts.memory
    m.config.seed = opts.seed
    return m
  end
  return glow.Glow(M.model_config(opts, shape, classes))
end

--- --checkpoint-every: steps (an integer) or seconds (a number with s, m or
--- h); returns steps, seconds (either may be nil).
function M.checkpoint_every(v)
  local n = math.tointeger(tonumber(v))
  if n and n >= 0 then return n > 0 and n or nil, nil end
  local x, unit = tostring(v):match("^(%d+%.?%d*)([smh])$")
  x = tonumber(x)
  if x and x > 0 then return nil, x * ({ s = 1, m = 60, h = 3600 })[unit] end
  C.usage_error(PROG, "option --checkpoint-every needs a step count or a time such as 30s, 10m or 1h, got '%s'",
    tostring(v))
end

--- The options a checkpoint records for --resume (beside the training
--- settings glow.train.run records): left out on --resume, they take the
--- recorded value.
local KEPT = { "data", "test", "epochs", "max-steps", "eval-limit", "size", "channels", "load-size", "strict",
  "background", "max-pixels", "max-bpd", "init-size", "checkpoint-every", "temperature", "memory", "model",
  "model-option", "sample-every", "sample-scale" }

local function absolute(path)
  if type(path) ~= "string" or path:sub(1, 1) == "/" then return path end
  local lfs = require "lfs"
  if not lfs.attributes(path) then return path end
  return (lfs.currentdir() .. "/" .. path):gsub("/%./", "/")
end

--- What the checkpoint records of opts (paths made absolute, so a run can
--- be resumed from another folder).
local function record_of(opts)
  local r = {}
  for _, k in ipairs(KEPT) do r[k] = opts[k] end
  local dir = type(r.data) == "string" and r.data:match("^cifar10:(.+)$")
  if dir then r.data = "cifar10:" .. absolute(dir) elseif r.data then r.data = absolute(r.data) end
  if r.test then r.test = absolute(r.test) end
  if r.model then r.model = absolute(r.model) end
  return r
end

--- On --resume: the recorded options fill those left out.
local function apply_record(opts, rec)
  if type(rec) ~= "table" then return end
  for _, k in ipairs(KEPT) do
    local v = rec[k]
    -- more --epochs extend the run: its old step limit does not hold them back
    if k == "max-steps" and opts.given.epochs then v = nil end
    local s = M.SPEC[k]
    if not opts.given[k] and v ~= nil and k ~= "model" and k ~= "model-option" then
      -- a value from a file: the same checks as on the command line
      local kind = s[1]
      local ok = (kind == "int" and math.type(v) == "integer") or (kind == "number" and type(v) == "number")
        or (kind == "string" and type(v) == "string") or (kind == "flag" and type(v) == "boolean")
      if ok and kind ~= "string" and kind ~= "flag" then
        ok = not ((s.min and v < s.min) or (s.max and v > s.max) or (s.above and v <= s.above))
      end
      if ok and s.choices then
        local found = false
        for _, c in ipairs(s.choices) do found = found or c == v end
        ok = found
      end
      if not ok then
        C.fail(PROG, "checkpoint %s: its recorded option --%s is corrupt (%s)", opts.resume, k, tostring(v))
      end
      opts[k] = v
    end
  end
end

--- The training options a checkpoint records (glow.train.run's settings):
--- option -> {settings key, how an option's value is recorded}.
local RECORDED = {
  batch = { "batch" }, seed = { "seed" }, optimizer = { "optimizer" }, lr = { "lr" }, warmup = { "warmup" },
  schedule = { "schedule" }, clip = { "clip" }, polyak = { "polyak" }, ["decay-frac"] = { "decay_frac" },
  flip = { "flip", function(v) return v or nil end },
  crop = { "crop", function(v) return v == "random" and "random" or nil end },
}

--- On --resume, before any data is read: the checkpoint's model, and the
--- options it records. An option given that contradicts it is a usage
--- error; one left out takes the checkpoint's value.
local function resume_options(opts)
  if require("lfs").attributes(opts.resume, "mode") ~= "file" then
    C.fail(PROG, "checkpoint %s: no such file", opts.resume)
  end
  local model, err = glow.load(opts.resume, { model = opts.model, model_changed_ok = opts["model-changed-ok"] or nil })
  if not model then C.fail(PROG, "%s", err) end
  local cfg = model.config
  if model.model_file then
    opts["model-option"] = model.model_file.options
  end
  for key in pairs(model.model_file and {} or ARCH) do
    if opts.given[key] then
      local want, have, name = opts[key], cfg[ARCH_KEY[key]], ARCH_KEY[key]
      if key == "no-learn-top" then want, have, name = not opts[key], cfg.learn_top, "learn_top"
      elseif key == "classes" then want, have, name = true, cfg.classes ~= nil, "classes"
      elseif key == "class-weight" and not cfg.classes then want, have, name = true, false, "classes" end
      if want ~= have then
        C.usage_error(PROG, "option --%s %s contradicts the checkpoint %s, which has %s = %s (the model comes from "
          .. "the checkpoint on --resume; leave the option out)", key, tostring(opts[key]), opts.resume, name,
          name == "classes" and tostring(cfg.classes or "none") or tostring(have))
      end
    end
  end
  local s = cfg.shape
  if (opts.size and opts.size ~= s[1]) or (opts.channels and opts.channels ~= s[3]) then
    C.usage_error(PROG, "options --size %s --channels %s contradict the checkpoint %s, whose model takes %s images",
      tostring(opts.size or s[1]), tostring(opts.channels or s[3]), opts.resume, table.concat(s, "x"))
  end
  local tr = model.checkpoint and model.checkpoint.trainer
  local settings = type(tr) == "table" and type(tr.settings) == "table" and tr.settings or {}
  apply_record(opts, type(tr) == "table" and tr.record or nil)
  -- a random crop's stored size: --load-size. Sizes from a file are bounded
  -- by the model's need before anything is loaded at that size: a crop
  -- window of the model's size from images at most 8 times larger per side
  local from = settings.crop_from and math.tointeger(tonumber(tostring(settings.crop_from):match("^(%d+)x")))
  if settings.crop_from ~= nil and (not from or from < math.max(s[1], s[2]) or from > 8 * math.max(s[1], s[2])) then
    C.fail(PROG, "checkpoint %s: its trainer state's crop_from '%s' is out of bounds for a %s model (a size from %d "
      .. "to %d)", opts.resume, tostring(settings.crop_from), table.concat(s, "x"), math.max(s[1], s[2]),
      8 * math.max(s[1], s[2]))
  end
  local ls = opts["load-size"]
  if ls and not opts.given["load-size"] and (ls < math.max(s[1], s[2]) or ls > 8 * math.max(s[1], s[2])) then
    C.fail(PROG, "checkpoint %s: its recorded option --load-size %d is out of bounds for a %s model (%d to %d)",
      opts.resume, ls, table.concat(s, "x"), math.max(s[1], s[2]), 8 * math.max(s[1], s[2]))
  end
  if from then
    if opts.given["load-size"] and opts["load-size"] ~= from then
      C.usage_error(PROG, "option --load-size %d contradicts the checkpoint %s, whose random crops were taken from "
        .. "%s images", opts["load-size"], opts.resume, settings.crop_from)
    end
    opts["load-size"] = from
  end
  local off = { flip = false, crop = "center" } -- augmentations are recorded only when on
  for key, r in pairs(RECORDED) do
    local have = settings[r[1]]
    if opts.given[key] then
      local want = r[2] and r[2](opts[key]) or opts[key]
      if (have ~= nil or off[key] ~= nil) and want ~= have then
        C.usage_error(PROG, "option --%s %s contradicts the checkpoint %s, which was trained with %s = %s (leave "
          .. "the option out to continue its run)", key, tostring(opts[key]), opts.resume, r[1],
          tostring(have == nil and off[key] or have))
      end
    elseif have ~= nil then
      opts[key] = have
    elseif off[key] ~= nil then
      opts[key] = off[key]
    end
  end
  return model
end

--- The data options that apply to the kind of training set: folders take
--- them all, packs a window, flips and random crops; named sets (Fashion-
--- MNIST, CIFAR-10) flips only.
local function check_data_options(opts, kind)
  C.check_folder_options(PROG, opts, kind, opts.data)
  if kind == "fashion-mnist" or kind == "cifar10" then
    for _, k in ipairs { "size", "load-size", "channels" } do
      if opts.given[k] and not opts.resume then
        C.usage_error(PROG, "option --%s applies to a folder or a .glowpack file, not to %s (its images are %s)", k,
          opts.data, kind == "cifar10" and "32x32x3" or "28x28x1")
      end
    end
    if opts.crop == "random" then
      C.usage_error(PROG, "option --crop random needs images stored larger than the model's (--load-size), which %s "
        .. "is not", opts.data)
    end
  elseif kind == "folder" then
    local lfs = require "lfs"
    -- the whole folder would be the training set, its test/ included
    if lfs.attributes(opts.data .. "/test", "mode") == "directory"
        and lfs.attributes(opts.data .. "/train", "mode") ~= "directory" then
      C.usage_error(PROG, "%s holds test/ but no train/: its test images would be trained on; put the training "
        .. "images in %s/train", opts.data, opts.data)
    end
  end
end

--- Check what can be checked before loading anything: the model's
--- options against the image size when --size is given or the data is a
--- known set.
local function check_early(opts)
  M.checkpoint_every(opts["checkpoint-every"])
  if opts.force and opts.resume then C.usage_error(PROG, "option --force starts a new run: not with --resume") end
  C.check_folder_options(PROG, opts)
  if opts.model then
    for key in pairs(ARCH) do
      if opts.given[key] and key ~= "n-bits" and key ~= "classes" and key ~= "class-weight" then
        C.usage_error(PROG, "option --%s belongs to glow.Glow; a model file takes its own options (--model-option "
          .. "key=value)", key)
      end
    end
  elseif opts["model-option"] then
    C.usage_error(PROG, "option --model-option needs --model FILE")
  end
  if not opts.resume and opts.given["class-weight"] and not opts.classes then
    C.usage_error(PROG, "option --class-weight applies to a class-conditional model: add --classes")
  end
  if not opts.resume and not opts.model then
    local kind = C.data_kind(PROG, opts.data, "train")
    local shape = opts.size and { opts.size, opts.size, opts.channels or 1 }
      or kind == "fashion-mnist" and { 28, 28, 1 } or kind == "cifar10" and { 32, 32, 3 } or nil
    if shape then M.model_config(opts, shape) end
  end
  -- (on --resume the warmup and schedule are the checkpoint's: checked after)
  if not opts.resume and opts.schedule ~= "constant" and opts["max-steps"] > 0 and opts["max-steps"] <= opts.warmup then
    C.usage_error(PROG, "--max-steps %d leaves no steps after the %d-step warmup, which the %s schedule decays over; "
      .. "lower --warmup or use --schedule constant", opts["max-steps"], opts.warmup, opts.schedule)
  end
  if opts["load-size"] and opts.size and opts["load-size"] < opts.size then
    C.usage_error(PROG, "option --load-size %d must be >= --size %d", opts["load-size"], opts.size)
  end

end

--- The classes of a class-conditional run (--classes, or a resumed
--- conditional model): the training set must be labelled, with the
--- resumed model's class count and recorded names, and the test set's
--- labels must mean the same classes; anything else is a usage error.
--- Returns the class count of a new model (nil when not conditional).
local function check_classes(opts, train, test, test_name, resumed)
  local k = resumed and resumed.config.classes
  if not k and not opts.classes then return nil end
  if not train.classes then
    if k then
      C.usage_error(PROG, "the model of the checkpoint %s is class-conditional (%d classes) and %s has no labels",
        opts.resume, k, opts.data)
    end
    C.usage_error(PROG, "option --classes needs a labelled training set and %s has no labels (a folder whose top "
      .. "level holds one subfolder per class, fashion-mnist, cifar10:DIR or a pack of such a folder)", opts.data)
  end
  local names = train.class_names
  if k then
    local recorded = C.class_names(resumed)
    local bad = train.classes ~= k and string.format("%s has %d class%s, the model %d", opts.data, train.classes,
      train.classes == 1 and "" or "es", k)
      or C.class_mismatch(train, opts.data, k, recorded)
    if bad then C.usage_error(PROG, "the training set contradicts the checkpoint %s: %s", opts.resume, bad) end
    names = recorded or names
  elseif train.classes < 2 then
    C.usage_error(PROG, "option --classes needs at least 2 classes and %s has 1", opts.data)
  end
  k = k or train.classes
  local bad = test and C.class_mismatch(test, test_name, k, names)
  if bad then
    C.usage_error(PROG, "the test set's labels must be the training set's classes for a class-conditional model: %s",
      bad)
  end
  return not resumed and k or nil
end

--- The enlargement of the samples' tiles: --sample-scale, or the smallest
--- K that makes a tile at least 64 pixels (its larger side).
function M.sample_scale(opts, shape)
  if opts["sample-scale"] > 0 then return opts["sample-scale"] end
  return math.max(1, math.ceil(64 / math.max(shape[1], shape[2])))
end

--- What the samples are drawn given: n, and y (a class-conditional model's
--- labels, row k of class k for the first 16; a model file's conditional
--- model's conditioning input, from the first test, or training, images).
local function sample_inputs(model, test, train, seed)
  local classes, y, n = model.config.classes, nil, 64
  if model.condition then
    local ds = test or train
    local idx = {}
    for i = 1, n do idx[i] = (i - 1) % ds:size() + 1 end
    local x, labels = ds:batch(idx, { n_bits = model.config.n_bits, seed = seed })
    y = model.condition(x, labels)
  elseif classes then
    n = 8 * math.min(classes, 16)
    y = {}
    for i = 1, n do y[i] = (i - 1) // 8 end
  end
  return n, y
end

--- OUT/samples.png (with the Polyak average, from seed + 1: the same draws
--- every time) and OUT/curve.png; each written to a temporary file and
--- renamed into place (glow.image.save_grid, glow.plot). Returns
--- nil or why samples.png could not be written, and whether curve.png was
--- drawn and why not.
local function write_progress(w, model, opt)
  local samples = opt:with_average(function()
    return model:sample(w.n, { temperature = w.temperature, seed = w.seed + 1, y = w.y })
  end)
  local _, err = glow.image.save_grid(w.out .. "/samples.png", samples, { cols = 8, scale = w.scale })
  local drawn, why = require("glow.plot").curve(w.out .. "/log.csv", w.out .. "/curve.png", { title = w.title })
  return err, drawn, why
end

function M.run(opts)
  check_early(opts)
  local dist = glow.distributed
  if dist.launched() then dist.init() end
  local root = dist.is_root()
  local function say(...) if root then print(...) end end
  -- on --resume the checkpoint's model sets the shape a folder is brought
  -- to, and the training options it records
  local resumed = opts.resume and resume_options(opts) or nil
  -- a resumed run writes beside its checkpoint unless told otherwise
  if opts.resume and not opts.given.out then opts.out = C.parent_of(opts.resume) or "." end
  -- nothing in --out is written through a symlink (the checkpoint and the
  -- pictures are renamed into place, which replaces one; the log is appended)
  if require("lfs").symlinkattributes(opts.out .. "/log.csv", "mode") == "link" then
    C.fail(PROG, "%s/log.csv is a symlink; refusing to write through it (remove it)", opts.out)
  end
  local kind = C.data_kind(PROG, opts.data, "train")
  check_data_options(opts, kind)
  if opts.test then C.data_kind(PROG, opts.test, "test") end
  -- the last check before any data is read: a new run does not silently
  -- replace another run's checkpoint and log
  local there = opts.out .. "/checkpoint.safetensors"
  if not opts.resume and not opts.force and require("lfs").symlinkattributes(there, "mode") then
    C.usage_error(PROG, "%s holds the checkpoint of another run: continue it with --resume %s, or start a new run "
      .. "over it with --force (or choose another --out)", opts.out, there)
  end
  -- a resumed model's shape comes from a file: its batches must fit the
  -- memory budget before any image is brought to that shape
  if resumed then
    C.check_memory(PROG, opts.batch, resumed.config.shape, "training on batches of", "lower --batch")
  end
  local folder = M.folder_options(opts, resumed and resumed.config.shape)
  local train = C.load_data(PROG, opts.data, "train", folder)
  if kind == "fashion-mnist" or kind == "cifar10" then
    train:set_augmentation { flip = opts.flip }
  elseif kind == "pack" then
    local st = train:stored_shape()
    if (opts["load-size"] and opts["load-size"] ~= st[1]) or (opts.channels and opts.channels ~= st[3]) then
      C.usage_error(PROG, "%s holds %s images: --load-size and --channels cannot change a pack (pack it again with "
        .. "glow pack --size --channels)", opts.data, table.concat(st, "x"))
    end
  end
  -- the test set: --test, or the data's own test split (a folder's test/);
  -- a pack has none. It is seen as it is: no flips, the centre window.
  local test_data = opts.test or kind ~= "pack" and (kind ~= "folder"
    or require("lfs").attributes(opts.data .. "/test", "mode") == "directory") and opts.data or nil
  local test
  if test_data then
    C.check_shape(PROG, test_data, "test", train:shape(), "the model")
    local f = M.folder_options(opts, train:shape())
    f.flip, f.crop = nil, nil
    test = C.load_data(PROG, test_data, "test", f)
  end
  local test_name = test_data and (not opts.test and kind == "folder" and opts.data .. "/test" or test_data)
  local model = make_model(opts, train:shape(), resumed, check_classes(opts, train, test, test_name, resumed))
  if opts.schedule ~= "constant" and opts["max-steps"] == 0 then
    local steps = opts.epochs * math.ceil(train:size() / opts.batch)
    if steps <= opts.warmup then
      C.usage_error(PROG, "%d epochs of %d images at --batch %d are %d steps, no more than the %d-step warmup, "
        .. "which the %s schedule decays after; lower --warmup or use --schedule constant", opts.epochs, train:size(),
        opts.batch, steps, opts.warmup, opts.schedule)
    end
  end
  C.mkdir_p(PROG, opts.out)
  local ckpt = opts.out .. "/checkpoint.safetensors"
  -- one run per folder: a lock held until this process ends
  if root then
    local locked, why, holder = glow.core.lock_dir(opts.out)
    if not locked then
      if why == "locked" then
        C.fail(PROG, "%s is in use by another glow train (pid %s): one run per folder; wait for it, or choose "
          .. "another --out", opts.out, holder and holder > 0 and tostring(holder) or "unknown")
      end
      C.fail(PROG, "%s", why)
    end
  end
  local info = glow.info()
  say(string.format("glow: %d train / %s test images %s%s; kernels %s, OpenBLAS kernel %s, %d threads%s",
    train:size(), test and tostring(test:size()) or "no", table.concat(train:shape(), "x"),
    model.config.classes and string.format(", %d classes", model.config.classes) or "", info.isa,
    info.blas_kernel, info.omp_threads, dist.size() > 1 and string.format(" x %d MPI ranks", dist.size()) or ""))
  if not test then say("glow: no test set (give --test DATA, or a folder with train/ and test/)") end
  local t0 = glow.core.now()
  local every_steps, every_seconds = M.checkpoint_every(opts["checkpoint-every"])
  local function summary(e)
    say(string.format("epoch %d: %s(train %s), %.0f s", e.epoch,
      e.test_bpd and string.format("test bits/dim %.4f ", e.test_bpd) or "", glow.train.figure(e.train_bpd), e.epoch_s))
  end
  local condition = model.condition
  -- samples and curve while it trains (rank 0): after each checkpoint, and
  -- every --sample-every steps; each step once, each failure said once
  local watch = { out = opts.out, temperature = opts.temperature, seed = opts.seed,
    scale = M.sample_scale(opts, model.config.shape), title = "glow train " .. opts.data, said = {} }
  if root then watch.n, watch.y = sample_inputs(model, test, train, opts.seed) end
  local function progress(state, m, opt)
    if watch.step == state.step then return end
    watch.step = state.step
    local err, drawn, why = write_progress(watch, m, opt)
    for _, msg in ipairs { err and ("cannot write samples.png: " .. err) or false,
      not drawn and ("no curve.png: " .. tostring(why)) or false } do
      if msg and not watch.said[msg] then
        watch.said[msg] = true
        say(string.format("step %d: %s; training goes on", state.step, msg))
      end
    end
  end
  local every = opts["sample-every"]
  -- the first SIGINT or SIGTERM ends the run after its step (single process)
  if dist.size() == 1 then glow.core.trap_signals() end
  local ok, result = pcall(glow.train.run, {
    model = model, train = train, test = test, epochs = opts.epochs, batch = opts.batch, lr = opts.lr,
    warmup = opts.warmup, schedule = opts.schedule, optimizer = opts.optimizer,
    decay_frac = opts.schedule == "wsd" and opts["decay-frac"] or nil,
    clip = opts.clip > 0 and opts.clip or nil,
    polyak = opts.polyak > 0 and opts.polyak or nil, seed = opts.seed, init_size = opts["init-size"],
    max_bpd = opts["max-bpd"], log = opts.out .. "/log.csv", checkpoint = ckpt,
    checkpoint_every = every_steps, checkpoint_seconds = every_seconds, record = record_of(opts),
    condition = condition and function(x, y) return condition(x, y) end or nil,
    -- each epoch's summary once: the progress line's, or this one without it
    on_epoch = opts["no-progress"] and summary or nil,
    on_checkpoint = function(state, m, opt, final)
      if not final then progress(state, m, opt) end -- the last: written below
    end,
    on_step = root and every > 0 and function(_, state, m, opt)
      if state.step % every == 0 then progress(state, m, opt) end
    end or nil,
    resume = opts.resume and true or nil, max_steps = opts["max-steps"] > 0 and opts["max-steps"] or nil,
    eval_limit = opts["eval-limit"] > 0 and opts["eval-limit"] or nil,
    progress = not opts["no-progress"] and "auto" or false,
  })
  if not ok then -- settings the data contradicts, an unwritable path, training that cannot go on
    glow.core.untrap_signals()
    if os.getenv("GLOW_TRACEBACK") then io.stderr:write(debug.traceback(tostring(result)), "\n") end
    C.fail(PROG, "%s", tostring(result))
  end
  local sig = result.interrupted or glow.core.interrupted()
  glow.core.untrap_signals()
  if sig then
    local q = C.shell_quote
    io.stderr:write(string.format("%s: %s after step %d; wrote %s; resume with: glow train --resume %s%s\n", PROG,
      sig == 15 and "SIGTERM" or "SIGINT", result.steps, ckpt, q(ckpt),
      model.model_file and (" --model " .. q(model.model_file.path)) or ""))
    os.exit(130)
  end
  if result.finished_before then
    say(string.format("glow: %s has finished its run (%d steps); nothing to train (more --epochs extend it)",
      opts.resume, result.steps))
  end
  if result.final_test_bpd then
    say(string.format("test bits/dim: %.4f (%d test images)", result.final_test_bpd,
      opts["eval-limit"] > 0 and math.min(opts["eval-limit"], test:size()) or test:size()))
  end
  if not root then
    dist.finalize()
    return
  end
  -- a class-conditional model's samples: row k of class k (the first 16)
  local classes = model.config.classes
  local err, drawn, why = write_progress(watch, model, result.optimizer)
  if err then C.fail(PROG, "%s", err) end
  if not drawn then say("glow: no curve.png: " .. tostring(why)) end
  print(string.format("wrote %s/samples.png (temperature %.2f%s), %s, %s/log.csv%s; %d steps in %.0f s",
    opts.out, opts.temperature, classes and ", row k: class k" or "", ckpt, opts.out,
    drawn and (", " .. opts.out .. "/curve.png") or "", result.run_steps, glow.core.now() - t0))
  dist.finalize()
end

return M
