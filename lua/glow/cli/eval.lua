--- `glow eval CKPT DATA`: the bits/dim of a data set under a checkpoint,
--- and of every image (--csv), with a histogram of the per-image figures
--- (--histogram; --against DATA2 adds a second set to the same plot).
---
--- Any folder is brought to the checkpoint's image shape: channels
--- converted, resized (area when shrinking, bilinear when enlarging) and
--- centre-cropped. Each image gets one dequantization draw from a fixed seed
--- (--seed), so the figures are reproducible. The checkpoint's Polyak
--- average is used when it holds one (--no-average: the raw weights).
local C = require "glow.cli.common"

local M = {}
local PROG = "glow eval"

M.description = "Bits/dim of a data set and of every image under a checkpoint; a histogram of them."
M.ARGS = { { "checkpoint", "a checkpoint (.safetensors) written by glow train or model:save" },
  { "data", "fashion-mnist[:split], cifar10:DIR[:split], a folder or a .glowpack file (default split: test)" } }
M.SPEC = {
  csv = { "string", help = "write one row per image: set,index,path,label,bpd" },
  histogram = { "string", help = "draw the per-image bits/dim histogram(s) into this PNG (gnuplot)" },
  against = { "string", help = "a second data set, scored too and drawn on the same histogram" },
  limit = { "int", min = 1, help = "use the first N images of each set" },
  batch = { "int", 256, min = 1, help = "images per forward pass" },
  seed = { "int", 0, min = 0, help = "seed of the dequantization noise" },
  ["no-average"] = { "flag", help = "the raw weights, not the checkpoint's Polyak average" },
  strict = { "flag", help = "a corrupt or unreadable image is an error instead of being skipped" },
  bins = { "int", 50, min = 2, help = "histogram bins" },
}
for k, v in pairs(C.MODEL_OPTIONS) do M.SPEC[k] = v end

--- Per-image bits/dim of ds under model: an array, in dataset order.
function M.per_image(model, ds, opts)
  local out = {}
  for x, y in ds:batches { size = opts.batch, shuffle = false, seed = opts.seed, n_bits = model.config.n_bits,
    limit = opts.limit } do
    local bpd = model:bpd_of(model:log_prob(x, C.condition(model, x, y))):totable()
    for _, v in ipairs(bpd) do out[#out + 1] = v end
  end
  return out
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
  C.data_kind(PROG, data, "test")
  if opts.against then C.data_kind(PROG, opts.against, "test") end
  if opts.against and not opts.histogram and not opts.csv then
    C.usage_error(PROG, "option --against needs --histogram or --csv (where the second set's figures go)")
  end
  for _, k in ipairs { "csv", "histogram" } do
    if opts[k] then C.check_writable(PROG, opts[k]) end
  end
  local model, averaged = C.load_model(PROG, ckpt, not opts["no-average"], opts)
  local s = model.config.shape
  local folder = { size = { s[1], s[2] }, channels = s[3], strict = opts.strict or nil }
  local sets = { { name = data, ds = C.load_data(PROG, data, "test", folder) } }
  if opts.against then
    sets[2] = { name = opts.against, ds = C.load_data(PROG, opts.against, "test", folder) }
  end
  if model.config.classes then
    for _, set in ipairs(sets) do
      if not set.ds.classes then
        C.fail(PROG, "the checkpoint's model is class-conditional (%d classes) and %s has no labels",
          model.config.classes, set.name)
      end
    end
  end
  print(string.format("glow eval: %s (%s weights), images %s", ckpt, averaged and "Polyak-averaged" or "raw",
    table.concat(s, "x")))
  for _, set in ipairs(sets) do
    set.values = M.per_image(model, set.ds, opts)
    set.mean = mean(set.values)
    print(string.format("%s: %.4f bits/dim (mean of %d images)", set.name, set.mean, #set.values))
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
    local ok, err = plot.histogram(list, opts.histogram, { bins = opts.bins,
      title = "per-image bits/dim under " .. ckpt:match("[^/]*$") })
    if not ok then C.fail(PROG, "%s", err) end
    print("wrote " .. opts.histogram)
  end
  return sets
end

return M
