--- glow.data: datasets of uint8 images in memory, and their preprocessed batches.
---
--- Loaders return a Dataset, or nil plus a message naming the file and the
--- problem when a file is missing, truncated or corrupt (io.open's
--- convention); bad arguments and unknown options raise an error.
---
---   glow.data.fashion_mnist("train" | "test" | {split = ..., dir = ...})
---   glow.data.cifar10(dir, "train" | "test")
---   glow.data.images(dir, {size = s})
---
--- A Dataset: ds:size(), ds:shape() -> {h, w, c}, ds.classes (nil when
--- unlabelled), ds.class_names, ds:labels(i, j), ds:batch(indices, opts),
--- ds:batches(opts). Preprocessing runs in C (csrc/data.c):
--- xq = floor(x / 2^(8 - n_bits)); x~ = (xq + u) / 2^n_bits - 0.5, where
--- image i's u ~ U[0, 1) in an epoch come from a generator seeded by a hash
--- of (seed, epoch, i): they do not depend on the batch size, the order or
--- where an epoch resumed. noise = false puts u = 0.5 (the bin centre).
local core = require "glow.core"
local util = require "glow.util"

local M = {}

M.DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

local FASHION_NAMES = { "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
  "Sneaker", "Bag", "Ankle boot" }
local CIFAR_NAMES = { "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
  "ship", "truck" }

local Dataset = util.class("glow.data.Dataset")
M.Dataset = Dataset

local function wrap(c, name, classes, names)
  local ds = setmetatable({ _c = c, name = name }, Dataset)
  local k, cnames = c:classes()
  if k and classes then
    if k > classes then return nil, string.format("%s: a label %d lies outside 0..%d", name, k - 1, classes - 1) end
    c:set_classes(classes)
    k = classes
  end
  ds.classes = k
  ds.class_names = k and (cnames or names) or nil
  return ds
end

local function check_split(split, what)
  if split ~= "train" and split ~= "test" then
    error(string.format("%s: split must be 'train' or 'test', got %s", what,
      type(split) == "string" and ("'" .. split .. "'") or tostring(split)), 0)
  end
end

local function check_string(v, what)
  if type(v) ~= "string" then
    error(string.format("%s must be a string, got %s", what, type(v)), 0)
  end
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

--- Fashion-MNIST from its gzipped IDX files (Debian: dataset-fashion-mnist).
--- fashion_mnist("train" | "test") or fashion_mnist{split = "train", dir = path}.
--- Plain (not gzipped) files with the same names less ".gz" are read too.
function M.fashion_mnist(opts)
  if opts == nil or type(opts) == "string" then opts = { split = opts } end
  if type(opts) ~= "table" then
    error("fashion_mnist: expected a split ('train' or 'test') or an options table, got " .. type(opts), 0)
  end
  util.check_options(opts, { split = true, dir = true }, "fashion_mnist")
  local split = opts.split or "train"
  check_split(split, "fashion_mnist")
  local dir = opts.dir or M.DEFAULT_FASHION_MNIST_DIR
  check_string(dir, "fashion_mnist: dir")
  local prefix = dir .. "/" .. (split == "train" and "train" or "t10k")
  local images, labels = prefix .. "-images-idx3-ubyte", prefix .. "-labels-idx1-ubyte"
  if exists(images .. ".gz") or not exists(images) then images = images .. ".gz" end
  if exists(labels .. ".gz") or not exists(labels) then labels = labels .. ".gz" end
  local c, err = core.load_idx(images, labels)
  if not c then
    if opts.dir == nil and not exists(images) then
      err = err .. " (install the Debian package dataset-fashion-mnist)"
    end
    return nil, err
  end
  return wrap(c, "fashion_mnist " .. split, 10, FASHION_NAMES)
end

--- CIFAR-10 binary batches: data_batch_1.bin .. data_batch_5.bin ("train")
--- or test_batch.bin ("test") in dir, or in dir/cifar-10-batches-bin.
function M.cifar10(dir, split)
  check_string(dir, "cifar10: dir")
  split = split or "train"
  check_split(split, "cifar10")
  local names = {}
  if split == "train" then
    for k = 1, 5 do names[k] = "data_batch_" .. k .. ".bin" end
  else
    names[1] = "test_batch.bin"
  end
  local sub = dir .. "/cifar-10-batches-bin"
  if not exists(dir .. "/" .. names[1]) and exists(sub .. "/" .. names[1]) then dir = sub end
  local paths = {}
  for k, n in ipairs(names) do paths[k] = dir .. "/" .. n end
  local c, err = core.load_cifar10(paths)
  if not c then return nil, err end
  return wrap(c, "cifar10 " .. split, 10, CIFAR_NAMES)
end

--- A folder of PNG files (sorted by name; no labels), or of one subfolder
--- per class (sorted by name; labels 0..k-1, class_names the folder names).
--- opts.size: every image must be size x size (default: the first one's size).
function M.images(dir, opts)
  check_string(dir, "images: dir")
  opts = util.check_options(opts, { size = true }, "images")
  local size = opts.size
  if size ~= nil and (math.type(size) ~= "integer" or size < 1) then
    error("images: size must be a positive integer, got " .. tostring(size), 0)
  end
  local c, err = core.load_images(dir, size or 0)
  if not c then return nil, err end
  return wrap(c, "images " .. dir)
end

--- A permutation of 1..n determined by (seed, epoch) alone (Fisher-Yates in C).
function M.permutation(n, seed, epoch)
  return core.permutation(n, seed or 0, epoch or 0)
end

------------------------------------------------------------------------ Dataset
function Dataset:size() return self._c:size() end
function Dataset:shape() return self._c:shape() end
function Dataset.__len(self) return self._c:size() end
function Dataset.__tostring(self)
  local s = self:shape()
  return string.format("glow.data.Dataset(%s: %d images of %dx%dx%d%s)", self.name, self:size(),
    s[1], s[2], s[3], self.classes and (", " .. self.classes .. " classes") or "")
end

--- The 0-based labels of images i..j (1-based, inclusive; default all), or
--- nil for an unlabelled dataset.
function Dataset:labels(i, j)
  return self._c:labels(i, j)
end

local int_opt = util.int_opt

local function bool_opt(v, default, what)
  if v == nil then return default end
  if type(v) ~= "boolean" then error(string.format("%s must be a boolean, got %s", what, type(v)), 0) end
  return v
end

local PRE_OPTS = { n_bits = true, seed = true, epoch = true, noise = true }

local function pre_opts(opts, what)
  return int_opt(opts.n_bits, 8, what .. ": n_bits", 1, 8), int_opt(opts.seed, 0, what .. ": seed", 0),
    int_opt(opts.epoch, 0, what .. ": epoch", 0), bool_opt(opts.noise, true, what .. ": noise")
end

--- x, y for a Lua array of 1-based image indices: x a float tensor
--- {b, h, w, c} preprocessed, y the 0-based labels (nil when unlabelled).
--- opts: n_bits = 8, seed = 0, epoch = 0, noise = true.
function Dataset:batch(indices, opts)
  if type(indices) ~= "table" then error("batch: indices must be a Lua array, got " .. type(indices), 0) end
  opts = util.check_options(opts, PRE_OPTS, "batch")
  local n_bits, seed, epoch, noise = pre_opts(opts, "batch")
  return self._c:batch(indices, n_bits, seed, epoch, noise)
end

local BATCH_OPTS = { size = true, shuffle = true, seed = true, epoch = true, start = true,
  n_bits = true, drop_last = true, limit = true, noise = true, ranks = true }

--- Iterate over one epoch: for x, y in ds:batches{...} do ... end.
--- opts: size = 64, shuffle = false, seed = 0, epoch = 0, start = 1 (the
--- 1-based batch to begin at, to resume an interrupted epoch), n_bits = 8,
--- drop_last = false, limit = nil (use only the first limit images; all
--- of them when there are fewer),
--- noise = true, ranks = nil. The shuffle depends on (seed, epoch) only.
--- ranks = {rank, size} (0-based rank): yield this rank's contiguous share
--- of each batch (the batches, their order and each image's noise stay
--- those of one process); a batch with fewer images than ranks (only the
--- last one can be) is skipped by every rank.
function Dataset:batches(opts)
  opts = util.check_options(opts, BATCH_OPTS, "batches")
  local n = self:size()
  local size = int_opt(opts.size, 64, "batches: size", 1)
  local limit = math.min(int_opt(opts.limit, n, "batches: limit", 1), n)
  local shuffle = bool_opt(opts.shuffle, false, "batches: shuffle")
  local drop_last = bool_opt(opts.drop_last, false, "batches: drop_last")
  local n_bits, seed, epoch, noise = pre_opts(opts, "batches")
  local count = drop_last and limit // size or (limit + size - 1) // size
  local b = int_opt(opts.start, 1, "batches: start", 1, count + 1)
  local order = shuffle and core.permutation(limit, seed, epoch) or nil
  local c = self._c
  local rank, ranks = 0, 1
  if opts.ranks ~= nil then
    local r = opts.ranks
    if type(r) ~= "table" or math.type(r[1]) ~= "integer" or math.type(r[2]) ~= "integer"
        or r[2] < 1 or r[1] < 0 or r[1] >= r[2] then
      error("batches: ranks must be {rank, size} with 0 <= rank < size", 0)
    end
    rank, ranks = r[1], r[2]
  end
  return function()
    if b > count then return nil end
    local first = (b - 1) * size + 1
    local last = math.min(first + size - 1, limit)
    if ranks > 1 then
      local m = last - first + 1
      if m < ranks then return nil end -- only the last batch can be this small
      first, last = first + m * rank // ranks, first + m * (rank + 1) // ranks - 1
    end
    local idx = {}
    if order then
      for k = first, last do idx[k - first + 1] = order[k] end
    else
      for k = first, last do idx[k - first + 1] = k end
    end
    b = b + 1
    return c:batch(idx, n_bits, seed, epoch, noise)
  end
end

--- The number of batches in one epoch of ds:batches(opts) (size, limit, drop_last).
function Dataset:num_batches(opts)
  opts = opts or {}
  local n = math.min(opts.limit or self:size(), self:size())
  local size = opts.size or 64
  return opts.drop_last and n // size or (n + size - 1) // size
end

return M
