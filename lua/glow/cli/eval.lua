--- `glow eval CKPT DATA`: the bits/dim of a data set under a checkpoint,
--- and of every image (--csv), with a histogram of the per-image figures
--- (--histogram; --against DATA2 adds a second set to the same plot).
---
--- With --against DATA2, one more line gives how well bits/dim tells the
--- two sets apart: the AUROC of flagging DATA2's images (out of
--- distribution) by a higher bits/dim than DATA's (in distribution),
--- computed exactly by glow.stats.auroc (a rank statistic, ties counted
--- half): 1 when every DATA2 image scores above every DATA image, 0.5
--- chance, below 0.5 when DATA2 looks *more* likely.
---
--- A class-conditional model scores each image given its label, and its
--- classification head's accuracy on the set is one more line (the share of
--- images whose most probable class is their label).
---
--- Any folder is brought to the checkpoint's image shape: channels
--- converted, resized (area when shrinking, bilinear when enlarging) and
--- centre-cropped. Each image gets one dequantization draw from a fixed seed
--- (--seed), so the figures are reproducible. The checkpoint's Polyak
--- average is used when it holds one (--no-average: the raw weights).
local glow = require "glow"
local C = require "glow.cli.common"

local M = {}
local PROG = "glow eval"

M.description = "Bits/dim of a data set and of each image under a checkpoint, a histogram; a conditional model's "
  .. "accuracy."
M.ARGS = { { "checkpoint", "a checkpoint (.safetensors) written by glow train or model:save" },
  { "data", "fashion-mnist[:split], cifar10:DIR[:split], a folder or a .glowpack file (default split: test)" } }
M.SPEC = {
  csv = { "string", help = "write one row per image: set,index,path,label,bpd" },
  histogram = { "string", help = "draw the per-image bits/dim histogram(s) into this PNG (gnuplot)" },
  against = { "string", help = "a second data set (out of distribution): scored too, drawn on the same histogram, "
    .. "and the AUROC of telling it from DATA by a higher bits/dim printed" },
  limit = { "int", min = 1, help = "use the first N images of each set" },
  batch = { "int", 256, min = 1, help = "images per forward pass" },
  seed = { "int", 0, min = 0, help = "seed of the dequantization noise" },
  ["no-average"] = { "flag", help = "the raw weights, not the checkpoint's Polyak average" },
  strict = { "flag", help = "a corrupt or unreadable image is an error instead of being skipped" },
  background = C.BACKGROUND,
  ["max-pixels"] = C.MAX_PIXELS,
  bins = { "int", 50, min = 2, help = "histogram bins" },
  range = { "string", meta = "<LO:HI>", help = "the histogram's bits/dim range (LO: or :HI sets one end) [default: "
    .. "the 1st to 99th percentile of all the values, widened by a quarter each side]" },
}
for k, v in pairs(C.MODEL_OPTIONS) do M.SPEC[k] = v end

--- The 0-based argmax of each row of log-probabilities {n, k} (the first
--- of equal ones), as a Lua array: the row's maxima marked, each mark
--- weighted k - j at column j, the largest weight taken.
local function argmax_rows(logp)
  local k = logp:shape()[2]
  local rev = {}
  for j = 1, k do rev[j] = k - j + 1 end
  local marks = logp:ge(logp:max(2, true)) * glow.Tensor.from(rev, { 1, k })
  local best = marks:max(2):totable()
  for i, v in ipairs(best) do best[i] = k - math.tointeger(v) end
  return best
end

--- Per-image bits/dim of ds under model: an array, in dataset order. For a
--- class-conditional model each image is scored given its label, and the
--- second result counts the images the classification head labels right.
function M.per_image(model, ds, opts)
  local out, right = {}, nil
  local classes = model.config.classes
  if classes then right = 0 end
  for x, y in ds:batches { size = opts.batch, shuffle = false, seed = opts.seed, n_bits = model.config.n_bits,
    limit = opts.limit } do
    local lp
    if classes then
      local logp
      lp, logp = model:log_prob_classify(x, y)
      for i, c in ipairs(argmax_rows(logp)) do
        if c == y[i] then right = right + 1 end
      end
    else
      lp = model:log_prob(x, C.condition(model, x, y))
    end
    for _, v in ipairs(model:bpd_of(lp):totable()) do out[#out + 1] = v end
  end
  return out, right
end

local function mean(v)
  local s = 0
  for _, x in ipairs(v) do s = s + x end
  return s / math.max(#v, 1)
end

local function csv_field(s)
  s = tostring(s)
  if s:find('[,"\n]') then return '"' .. s:gsub('"', '""') .. '"' end
  return s
end

function M.run(opts)
  local ckpt, data = opts.args.checkpoint, opts.args.data
  C.check_folder_options(PROG, opts)
  -- --background and --max-pixels apply when either set is a folder
  local kinds = { (C.data_kind(PROG, data, "test")) }
  if opts.against then kinds[2] = C.data_kind(PROG, opts.against, "test") end
  if kinds[1] ~= "folder" and kinds[2] ~= "folder" then C.check_folder_options(PROG, opts, kinds[1], data) end
  local range = C.range_option(PROG, opts.range)
  if range and not opts.histogram then C.usage_error(PROG, "option --range applies to --histogram") end
  for _, k in ipairs { "csv", "histogram" } do
    if opts[k] then C.check_writable(PROG, opts[k]) end
  end
  local model, averaged = C.load_model(PROG, ckpt, not opts["no-average"], opts)
  local s = model.config.shape
  C.check_memory(PROG, opts.batch, s, "evaluating batches of", "lower --batch")
  C.check_shape(PROG, data, "test", s)
  if opts.against then C.check_shape(PROG, opts.against, "test", s) end
  local folder = { size = { s[1], s[2] }, channels = s[3], strict = opts.strict or nil, background = opts.background,
    max_pixels = opts["max-pixels"] }
  local sets = { { name = data, ds = C.load_data(PROG, data, "test", folder) } }
  if opts.against then
    sets[2] = { name = opts.against, ds = C.load_data(PROG, opts.against, "test", folder) }
  end
  -- a class-conditional model scores each image given its label: the
  -- labels must mean the model's classes
  local classes = model.config.classes
  if classes then
    for _, set in ipairs(sets) do
      local bad = C.class_mismatch(set.ds, set.name, classes, C.class_names(model))
      if bad then
        C.fail(PROG, "the checkpoint's model is class-conditional (%d classes) and %s", classes, bad)
      end
    end
  end
  print(string.format("glow eval: %s (%s weights), images %s", ckpt, averaged and "Polyak-averaged" or "raw",
    table.concat(s, "x")))
  for _, set in ipairs(sets) do
    set.values, set.right = M.per_image(model, set.ds, opts)
    set.mean = mean(set.values)
    print(string.format("%s: %.4f bits/dim (mean of %d images)", set.name, set.mean, #set.values))
    if classes then
      set.accuracy = set.right / math.max(#set.values, 1)
      print(string.format("accuracy: %.2f%% (%d images, %d classes)", 100 * set.accuracy, #set.values, classes))
    end
  end
  if sets[2] then
    local auroc = require("glow.stats").auroc(sets[1].values, sets[2].values)
    sets[2].auroc = auroc
    print(string.format("AUROC (%s against %s): %.4f", sets[2].name, sets[1].name, auroc))
  end
  if opts.csv then
    C.prepare_output(PROG, opts.csv)
    local tmp = opts.csv .. ".tmp"
    local f, err = io.open(tmp, "w")
    if not f then C.fail(PROG, "cannot write %s: %s", opts.csv, tostring(err)) end
    f:write("set,index,path,label,bpd\n")
    for _, set in ipairs(sets) do
      local labels = set.ds:labels()
      local paths = set.ds.paths and set.ds:paths() or nil
      for i, v in ipairs(set.values) do
        f:write(csv_field(set.name), ",", i, ",", csv_field(paths and paths[i] or ""), ",",
          labels and labels[i] or "", ",", string.format("%.6f", v), "\n")
      end
    end
    local ok, why = f:close()
    if not ok then C.fail(PROG, "cannot write %s: %s", opts.csv, tostring(why)) end
    os.rename(tmp, opts.csv)
    print("wrote " .. opts.csv)
  end
  if opts.histogram then
    local plot = require "glow.plot"
    local list = {}
    for i, set in ipairs(sets) do list[i] = { name = set.name, values = set.values } end
    C.prepare_output(PROG, opts.histogram)
    local ok, err = plot.histogram(list, opts.histogram, { bins = opts.bins, range = range,
      title = "per-image bits/dim under " .. ckpt:match("[^/]*$") })
    if not ok then C.fail(PROG, "%s", err) end
    print("wrote " .. opts.histogram)
  end
  return sets
end

return M
