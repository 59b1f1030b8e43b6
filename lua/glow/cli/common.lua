--- glow.cli.common: what the `glow` subcommands share: one-line failures,
--- data set names, checkpoints, folders.
---
--- A data set is named by one of:
---   fashion-mnist[:train|:test]      Fashion-MNIST (Debian dataset-fashion-mnist)
---   cifar10:DIR[:train|:test]        the CIFAR-10 binary batches in DIR
---   DIR                              a folder of PNG/JPEG images (walked
---                                    recursively; class subfolders give labels)
---   FILE.glowpack                    a file made by `glow pack` (read a batch at a time)
--- The split defaults to the one the command needs (train for training, test
--- for evaluation).
local glow = require "glow"
local lfs = require "lfs"
local options = require "glow.cli.options"

local M = {}

--- A runtime failure (a file that cannot be read or written, training that
--- cannot go on): one line "prog: message" on stderr, exit code 1.
function M.fail(prog, fmt, ...)
  local msg = select("#", ...) > 0 and string.format(fmt, ...) or fmt
  io.stderr:write(prog, ": ", (tostring(msg):gsub("%s*\n%s*", "; ")), "\n")
  os.exit(1)
end

M.usage_error = options.usage_error

--- The options of every command that loads a checkpoint: a model file's.
M.MODEL_OPTIONS = {
  model = { "string", meta = "<file.lua>",
    help = "the model file the checkpoint was trained from (glow train --model)" },
  ["model-changed-ok"] = { "flag", help = "accept a model file whose SHA-256 differs from the checkpoint's record" },
}

--- The --background option of the commands that read folders.
M.BACKGROUND = { "string", "white", meta = "<colour>",
  help = "the colour transparent pixels (PNG alpha) are composited over: white, black, gray or R,G,B" }

--- The --max-pixels option of the commands that read folders.
M.MAX_PIXELS = { "int", glow.data.MAX_PIXELS, min = 1, meta = "<n>",
  help = "an image whose header says more pixels is skipped as a bad file (Pillow's MAX_IMAGE_PIXELS)" }

--- Check the options of the commands that read folders: the --background
--- value (a usage error when malformed), and that --background and
--- --max-pixels apply: given, the data (of kind, named name) must be a
--- folder.
function M.check_folder_options(prog, opts, kind, name)
  if not pcall(glow.data.background, opts.background) then
    options.usage_error(prog, "option --background needs white, black, gray or R,G,B (each 0..255), got '%s'",
      tostring(opts.background))
  end
  if kind and kind ~= "folder" and opts.given and opts.given.background then
    options.usage_error(prog, "option --background applies to a folder of images, not to %s (%s)", name,
      kind == "pack" and "a pack's images were composited when it was packed: glow pack --background"
        or "its images have no transparency")
  end
  if kind and kind ~= "folder" and opts.given and opts.given["max-pixels"] then
    options.usage_error(prog, "option --max-pixels applies to a folder of images, not to %s (%s)", name,
      kind == "pack" and "a pack's images were decoded when it was packed: glow pack --max-pixels"
        or "its images are already decoded")
  end
end

--- The conditioning input of a batch for model: its model file's
--- condition(x, labels), the labels of a class-conditional model, or nil.
function M.condition(model, x, y)
  if model.condition then return model.condition(x, y) end
  return model.config.classes and y or nil
end

local IMAGE_EXTENSIONS = { png = true, jpg = true, jpeg = true, gif = true, webp = true, tif = true, tiff = true,
  bmp = true, svg = true, heic = true, heif = true, avif = true, jxl = true, jfif = true }

--- Whether the file at path is one image: an image file's extension, or
--- a PNG, JPEG or GIF signature.
function M.is_image_file(path)
  local ext = path:match("%.(%w+)$")
  if ext and IMAGE_EXTENSIONS[ext:lower()] then return true end
  local f = io.open(path, "rb")
  if not f then return false end
  local head = f:read(8) or ""
  f:close()
  return head == "\137PNG\r\n\26\n" or head:sub(1, 3) == "\255\216\255" or head:sub(1, 4) == "GIF8"
end

--- The kind of a data set name and its parts: kind, location, split.
--- Raises a usage error (exit 2) for a malformed name.
function M.data_kind(prog, name, split)
  if type(name) ~= "string" or name == "" then options.usage_error(prog, "a data set name is required") end
  local base, sp = name:match("^(fashion%-mnist):(%a+)$")
  if name == "fashion-mnist" or base then
    sp = sp or split
    if sp ~= "train" and sp ~= "test" then
      options.usage_error(prog, "data set %s: the split must be train or test, got '%s'", name, tostring(sp))
    end
    return "fashion-mnist", nil, sp
  end
  local dir = name:match("^cifar10:(.+)$")
  if dir then
    local d, s2 = dir:match("^(.*):(%a+)$")
    if d and (s2 == "train" or s2 == "test") then dir, sp = d, s2 end
    return "cifar10", dir, sp or split
  end
  local mode = lfs.attributes(name, "mode")
  if mode == "directory" then return "folder", name, split end
  if mode == "file" and M.is_image_file(name) then
    options.usage_error(prog, "data set %s is a single image, not a data set: give the folder that holds the "
      .. "images (%s)", name, M.parent_of(name) or ".")
  end
  if mode == "file" then return "pack", name, split end
  if name:match("^%a[%w%-]*:") then
    options.usage_error(prog, "unknown data set '%s' (fashion-mnist[:split], cifar10:DIR[:split], a folder, "
      .. "or a .glowpack file)", name)
  end
  options.usage_error(prog, "data set %s: no such folder or file", name)
end

--- Load a data set by name (see the top). folder: options for
--- glow.data.images (size, channels, ...). Returns the Dataset; a file
--- that cannot be read ends the process (exit 1).
function M.load_data(prog, name, split, folder)
  local kind, where, sp = M.data_kind(prog, name, split)
  local ds, err
  if kind == "fashion-mnist" then
    ds, err = glow.data.fashion_mnist { split = sp }
  elseif kind == "cifar10" then
    ds, err = glow.data.cifar10(where, sp)
  elseif kind == "pack" then
    local f = folder or {}
    local ok
    ok, ds, err = pcall(glow.data.open_pack, where, { size = f.size, crop = f.crop, flip = f.flip })
    if not ok then M.fail(prog, "%s: %s", where, tostring(ds)) end
  else
    local sub = where .. "/" .. sp
    if sp and lfs.attributes(sub, "mode") == "directory" then where = sub end
    ds, err = glow.data.images(where, folder)
  end
  if not ds then M.fail(prog, "%s", err) end
  return ds
end

--- The image shape {h, w, c} of the named sets.
local NAMED_SHAPE = { ["fashion-mnist"] = { 28, 28, 1 }, cifar10 = { 32, 32, 3 } }

--- Check, before its images are read, that the data set name (of split)
--- can be brought to shape {h, w, c}, the shape the model takes (whose:
--- "the checkpoint's model" by default). A folder always can (its images
--- are resized and converted); a named set must have that shape, and a pack
--- its channels and at least its size (a larger pack gives its centre
--- window). Anything else is a usage error: one line naming both shapes and
--- the way out.
function M.check_shape(prog, name, split, shape, whose)
  local kind, where, sp = M.data_kind(prog, name, split)
  local have = NAMED_SHAPE[kind]
  if kind == "pack" then
    local ok, ds = pcall(glow.data.open_pack, where)
    if not ok or not ds then return end -- loading it says what is wrong
    have = ds:stored_shape()
  end
  if not have then return end
  local fits = have[3] == shape[3] and (have[1] == shape[1] and have[2] == shape[2]
    or kind == "pack" and have[1] >= shape[1] and have[2] >= shape[2])
  if fits then return end
  local way
  if kind == "fashion-mnist" and shape[3] == 3 then
    way = "Fashion-MNIST's gray images cannot be used with an RGB model"
  elseif kind == "pack" then
    way = string.format("pack its images again at that shape: glow pack SOURCE OUT.glowpack --size %d --channels %d",
      shape[1], shape[3])
  else
    way = string.format("pack it at that shape: glow pack %s OUT.glowpack --split %s --size %d --channels %d",
      kind == "cifar10" and M.shell_quote("cifar10:" .. where) or kind, sp, shape[1], shape[3])
  end
  options.usage_error(prog, "%s holds %s images and %s takes %s: %s (a folder of images is resized and "
    .. "converted to the model's shape by itself)", name, table.concat(have, "x"), whose or "the checkpoint's model",
    table.concat(shape, "x"), way)
end

--- Load a checkpoint, with its Polyak average when it holds one and
--- average is not false; opts: the command's options (--model FILE and
--- --model-changed-ok for a model file's checkpoint). Returns the model and
--- whether it is the average.
function M.load_model(prog, path, average, opts)
  if lfs.attributes(path, "mode") ~= "file" then M.fail(prog, "checkpoint %s: no such file", path) end
  local lo = { model = opts and opts.model or nil, model_changed_ok = opts and opts["model-changed-ok"] or nil }
  if average ~= false then
    local m = glow.load(path, { average = true, model = lo.model, model_changed_ok = lo.model_changed_ok })
    if m then return m, true end
  end
  local m, err = glow.load(path, lo)
  if not m then M.fail(prog, "%s", err) end
  return m, false
end

--- Make a folder and the folders above it (luafilesystem, no shell):
--- true, or nil and a message naming the folder that could not be made.
function M.make_dirs(dir)
  local path = ""
  for part in dir:gmatch("[^/]+") do
    path = (path == "" and dir:sub(1, 1) == "/") and "/" .. part or (path == "" and part or path .. "/" .. part)
    local mode = lfs.attributes(path, "mode")
    if mode == nil then
      local ok, err = lfs.mkdir(path)
      if not ok and lfs.attributes(path, "mode") ~= "directory" then
        return nil, string.format("cannot make the folder %s: %s", path, tostring(err))
      end
    elseif mode ~= "directory" then
      return nil, string.format("cannot make the folder %s: a file of that name is in the way", path)
    end
  end
  return true
end

--- M.make_dirs, or a runtime failure of prog.
function M.mkdir_p(prog, dir)
  local ok, err = M.make_dirs(dir)
  if not ok then M.fail(prog, "%s", err) end
end

--- The folder a file will be written into must exist (or be made).
function M.parent_of(path)
  return path:match("^(.*)/[^/]*$")
end

--- Check that path can be written, before any work and without making
--- anything: the nearest folder above it that exists must be a folder in
--- which a probe file can be created (the folders below it are made by
--- M.prepare_output when the file is written).
function M.check_writable(prog, path)
  local dir = M.parent_of(path)
  if dir == "" then dir = "/" end
  dir = dir or "."
  while lfs.attributes(dir, "mode") == nil do
    local up = M.parent_of(dir)
    dir = up == "" and "/" or up or "."
  end
  if lfs.attributes(dir, "mode") ~= "directory" then
    M.fail(prog, "cannot write %s: %s is not a folder", path, dir)
  end
  local ok, err = glow.core.probe_dir(dir)
  if not ok then M.fail(prog, "cannot write %s: %s", path, tostring(err)) end
end

--- Make the folders above path, just before it is written.
function M.prepare_output(prog, path)
  local dir = M.parent_of(path)
  if dir and dir ~= "" then M.mkdir_p(prog, dir) end
end

--- The memory a command plans its tensors within, in bytes:
--- GLOW_MEMORY_BUDGET (a number of bytes, or with a K, M or G suffix), else
--- half the machine's memory (/proc/meminfo), else 4 GiB.
function M.memory_budget()
  local v = os.getenv("GLOW_MEMORY_BUDGET")
  if v then
    local x, unit = v:match("^(%d+%.?%d*)([KMG]?)$")
    if x then return tonumber(x) * ({ [""] = 1, K = 1024, M = 1024 ^ 2, G = 1024 ^ 3 })[unit] end
  end
  local f = io.open("/proc/meminfo", "r")
  if f then
    local kb = tonumber((f:read("a") or ""):match("MemTotal:%s*(%d+)"))
    f:close()
    if kb then return kb * 1024 / 2 end
  end
  return 4 * 1024 ^ 3
end

--- Refuse, before allocating, work on n images of shape {h, w, c} that
--- needs more than the budget: images, latents and the flow's working
--- copies, about 8 float tensors of the batch. The message says what to
--- lower.
function M.check_memory(prog, n, shape, what, fix)
  local need = 8.0 * 4 * n * shape[1] * shape[2] * shape[3]
  local budget = M.memory_budget()
  if need > budget then
    M.fail(prog, "%s %d images of %s needs about %.1f GiB, over the %.1f GiB budget (half the memory, or "
      .. "GLOW_MEMORY_BUDGET): %s", what, n, table.concat(shape, "x"), need / 1024 ^ 3, budget / 1024 ^ 3, fix)
  end
end

--- s quoted for a POSIX shell (a command line a user can paste).
function M.shell_quote(s)
  s = tostring(s)
  if s:match("^[%w%./_%-:=,]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- The class names a checkpoint records for its class-conditional model
--- (glow.train.run keeps the training set's in its trainer state): an
--- array of model.config.classes strings, or nil.
function M.class_names(model)
  local tr = model.checkpoint and model.checkpoint.trainer
  local names = type(tr) == "table" and tr.class_names
  local k = model.config.classes
  if not k or type(names) ~= "table" or #names ~= k then return nil end
  for i = 1, k do
    if type(names[i]) ~= "string" then return nil end
  end
  return names
end

--- Whether the labels of ds (named name) mean what a class-conditional
--- model's k labels mean: ds must be labelled, with at most k classes, whose
--- names, where both sides know them, are the model's first ones. nil when
--- they do, else what is wrong.
function M.class_mismatch(ds, name, k, names)
  if not ds.classes then return string.format("%s has no labels", name) end
  if ds.classes > k then return string.format("%s has %d classes, the model %d", name, ds.classes, k) end
  if names and ds.class_names then
    for i = 1, ds.classes do
      if ds.class_names[i] ~= names[i] then
        return string.format("%s's class %d is '%s', the model's is '%s'", name, i - 1, tostring(ds.class_names[i]),
          tostring(names[i]))
      end
    end
  end
end

--- --range LO:HI as glow.plot's range {lo, hi} (nil when not given); a
--- malformed one is a usage error.
function M.range_option(prog, text)
  if text == nil then return nil end
  local r, err = require("glow.plot").parse_range(text)
  if not r then options.usage_error(prog, "option --range: %s", err) end
  return r
end

--- Labels for a conditional model from a comma-separated list or one
--- number, repeated to n.
function M.labels(prog, spec, n, classes)
  local list = {}
  for item in tostring(spec):gmatch("[^,]+") do
    local v = math.tointeger(tonumber(item))
    if not v or v < 0 or v >= classes then
      options.usage_error(prog, "option -y: labels must be integers in 0..%d, got '%s'", classes - 1, item)
    end
    list[#list + 1] = v
  end
  local y = {}
  for i = 1, n do y[i] = list[(i - 1) % #list + 1] end
  return y
end

return M
