--- glow.data: datasets of uint8 images (in memory, or read from a packed
--- file a batch at a time), and their preprocessed batches.
---
--- Loaders return a Dataset, or nil plus a message naming the file and the
--- problem when a file is missing, truncated or corrupt (io.open's
--- convention); bad arguments and unknown options raise an error.
---
---   glow.data.fashion_mnist("train" | "test" | {split = ..., dir = ...})
---   glow.data.cifar10(dir, "train" | "test")
---   glow.data.images(dir, {size, load_size, channels, crop, flip, strict, on_skip, background,
---     max_pixels})
---   glow.data.pack(folder | dataset, path, opts) -> n | nil, message
---   glow.data.open_pack(path, {size, crop, flip})
---
--- A Dataset: ds:size(), ds:shape() -> {h, w, c} (of a batch's images),
--- ds:stored_shape(), ds.classes (nil when unlabelled), ds.class_names,
--- ds:labels(i, j), ds:batch(indices, opts), ds:batches(opts), and
--- ds.skipped for image folders. Every pixel is handled in C (csrc/data.c,
--- image.c, resize.c): decoding, conversion, resizing, windows, flips and
--- the preprocessing:
--- xq = floor(x / 2^(8 - n_bits)); x~ = (xq + u) / 2^n_bits - 0.5, where
--- image i's u ~ U[0, 1) in an epoch come from a generator seeded by a hash
--- of (seed, epoch, i): they do not depend on the batch size, the order or
--- where an epoch resumed. noise = false puts u = 0.5 (the bin centre).
local core = require "glow.core"
local util = require "glow.util"

local M = {}

M.DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
--- The default max_pixels of a folder's images: Pillow's MAX_IMAGE_PIXELS.
M.MAX_PIXELS = 89478485

local FASHION_NAMES = { "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
  "Sneaker", "Bag", "Ankle boot" }
local CIFAR_NAMES = { "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
  "ship", "truck" }

local Dataset = util.class("glow.data.Dataset")
M.Dataset = Dataset

local int_opt = util.int_opt

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

local function describe_value(v)
  if type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = tostring(x) end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  return tostring(v)
end

-- size options: an integer s (s x s) or {h, w}; nil when absent
local function size_opt(v, what)
  if v == nil then return nil end
  if math.type(v) == "integer" and v >= 1 and v <= 65535 then return v, v end
  if type(v) == "table" and #v == 2 and math.type(v[1]) == "integer" and math.type(v[2]) == "integer"
      and v[1] >= 1 and v[2] >= 1 and v[1] <= 65535 and v[2] <= 65535 then
    return v[1], v[2]
  end
  error(string.format("%s must be a positive integer or {h, w}, got %s", what, describe_value(v)), 0)
end

local function flip_opt(v, default, what)
  if v == nil then return default end
  if type(v) ~= "boolean" then error(string.format("%s must be a boolean, got %s", what, type(v)), 0) end
  return v
end

local function crop_opt(v, default, what)
  if v == nil then return default end
  if v ~= "center" and v ~= "random" then
    error(string.format("%s must be 'center' or 'random', got %s", what, describe_value(v)), 0)
  end
  return v
end

local COLOURS = { white = { 255, 255, 255 }, black = { 0, 0, 0 }, gray = { 128, 128, 128 },
  grey = { 128, 128, 128 } }

--- The colour transparent pixels are composited over: nil (white),
--- "white", "black", "gray" (or "grey"), an "R,G,B" string or an {r, g, b}
--- array, each 0..255. Returns {r, g, b}; raises on anything else.
function M.background(v, what)
  what = what or "background"
  if v == nil then return { 255, 255, 255 } end
  local rgb
  if type(v) == "string" then
    local named = COLOURS[v:lower()]
    if named then return { named[1], named[2], named[3] } end
    local r, g, b = v:match("^%s*(%d+)%s*,%s*(%d+)%s*,%s*(%d+)%s*$")
    if r then rgb = { tonumber(r), tonumber(g), tonumber(b) } end
  elseif type(v) == "table" and #v == 3 then
    rgb = { v[1], v[2], v[3] }
  end
  for k = 1, 3 do
    if rgb and not (math.type(rgb[k]) == "integer" and rgb[k] >= 0 and rgb[k] <= 255) then rgb = nil end
  end
  if not rgb then
    error(string.format("%s must be white, black, gray, \"R,G,B\" or {r, g, b} with each in 0..255, got %s", what,
      type(v) == "string" and ("'" .. v .. "'") or describe_value(v)), 0)
  end
  return rgb
end

local function rgb24(rgb) return rgb[1] << 16 | rgb[2] << 8 | rgb[3] end

-- the options of a folder (images and pack): the stored size (lh, lw), the
-- window (oh, ow), channels, strict, on_skip, bg (0xRRGGBB), max_pixels
local function folder_opts(opts, what)
  local o = {}
  o.bg = rgb24(M.background(opts.background, what .. ": background"))
  o.oh, o.ow = size_opt(opts.size, what .. ": size")
  o.lh, o.lw = size_opt(opts.load_size, what .. ": load_size")
  if o.lh and o.oh and (o.lh < o.oh or o.lw < o.ow) then
    error(string.format("%s: load_size %dx%d must be at least size %dx%d", what, o.lh, o.lw, o.oh, o.ow), 0)
  end
  if not o.lh then o.lh, o.lw = o.oh, o.ow end
  if not o.oh then o.oh, o.ow = o.lh, o.lw end
  local c = opts.channels
  if c ~= nil and c ~= 1 and c ~= 3 then
    error(string.format("%s: channels must be 1 or 3, got %s", what, describe_value(c)), 0)
  end
  o.c = c
  o.strict = flip_opt(opts.strict, false, what .. ": strict")
  if opts.on_skip ~= nil and type(opts.on_skip) ~= "function" then
    error(string.format("%s: on_skip must be a function, got %s", what, type(opts.on_skip)), 0)
  end
  o.on_skip = opts.on_skip
  o.max_pixels = int_opt(opts.max_pixels, M.MAX_PIXELS, what .. ": max_pixels", 1)
  return o
end

local function plural(n, one, many) return n == 1 and one or many end

-- What a folder's load left out (core's skips: path, reason, kind), on
-- stderr: each unreadable file on a line of its own (or to on_skip), then
-- their count; the files of other formats in one line, counted by
-- extension; the second names of files already read (links) in one line.
-- on_skip, when set, is told of every file left out. Returns the counts
-- {corrupt = n, format = n, duplicate = n}.
local function report_skips(what, skips, total, on_skip)
  local by = { corrupt = {}, format = {}, duplicate = {} }
  for _, s in ipairs(skips) do
    local list = by[s.kind] or by.corrupt
    list[#list + 1] = s
  end
  for _, s in ipairs(by.corrupt) do
    if on_skip then
      on_skip(s.path, s.reason)
    else
      io.stderr:write(string.format("%s: skipped %s: %s\n", what, s.path, s.reason))
    end
  end
  if #by.corrupt > 0 then
    io.stderr:write(string.format("%s: skipped %d of %d files\n", what, #by.corrupt, total))
  end
  local fmt = by.format
  if #fmt > 0 then
    local count, exts = {}, {}
    for _, s in ipairs(fmt) do
      if not count[s.reason] then exts[#exts + 1] = s.reason end
      count[s.reason] = (count[s.reason] or 0) + 1
      if on_skip then on_skip(s.path, "another image format (" .. s.reason .. ")") end
    end
    table.sort(exts, function(a, b) return count[a] > count[b] or (count[a] == count[b] and a < b) end)
    for i, e in ipairs(exts) do exts[i] = e .. " " .. count[e] end
    io.stderr:write(string.format("%s: skipped %d %s (%s; glow reads PNG and JPEG): %s%s\n", what, #fmt,
      plural(#fmt, "file of another format", "files of other formats"), table.concat(exts, ", "),
      #fmt > 1 and "first " or "", fmt[1].path))
  end
  local dup = by.duplicate
  if #dup > 0 then
    for _, s in ipairs(dup) do
      if on_skip then on_skip(s.path, "the same file as " .. s.reason) end
    end
    io.stderr:write(string.format("%s: skipped %d %s (links), each file read once: %s%s is %s\n", what, #dup,
      plural(#dup, "second name of a file already read", "second names of files already read"),
      #dup > 1 and "first " or "", dup[1].path, dup[1].reason))
  end
  return { corrupt = #by.corrupt, format = #fmt, duplicate = #dup }
end

local IMAGE_OPTS = { size = true, channels = true, load_size = true, crop = true, flip = true,
  strict = true, on_skip = true, background = true, max_pixels = true }

--- A folder of PNG and JPEG images, in memory (uint8, decoded in parallel).
---
--- The folder is walked recursively (hidden entries skipped, symbolic links
--- followed, a folder reached twice walked once); files named .png, .jpg or
--- .jpeg (any case) are read by their content (PNG or JPEG signature), in
--- path order. Each real file (device and inode) is read once: a second
--- name of it (a symbolic link to a file already listed, a hard link, a
--- folder linked into two classes) is left out, the name that is not a
--- link kept, and one line on stderr says so ("glow.data.images: skipped 1
--- second name of a file already read (links), each file read once: A is
--- B"); ds.duplicates counts them. Files of other image formats (.gif,
--- .webp, .tif, .tiff, .bmp, .svg, .heic, .avif, ...) are never read: one
--- line counts them by extension and names the first ("glow.data.images:
--- skipped 3 files of other formats (.gif 2, .webp 1; glow reads PNG and
--- JPEG): first DIR/a/b.gif"); ds.other_formats counts them.
--- When the top level holds subfolders and no image file, each
--- top-level subfolder is a class (sorted by name; its whole subtree belongs
--- to it): labels 0..k-1, ds.class_names the folder names. Otherwise the set
--- is unlabelled (ds.classes nil).
---
--- opts:
---   size = s or {h, w}: the size of the images a batch yields (ds:shape());
---     default: load_size, else the first readable image's size.
---   load_size = L or {h, w} (at least size; default size): every image is
---     fit to it when loaded (scaled to cover it keeping its aspect ratio,
---     the centre cropped; per axis AREA averaging when shrinking, bilinear
---     with half-pixel centres when growing) and stored so
---     (ds:stored_shape()). A batch takes a size window of it.
---   channels = 1 or 3 (default: the first readable image's): every image
---     is converted (gray -> RGB replicates; RGB -> gray is ITU-R 601 luma
---     0.299 R + 0.587 G + 0.114 B, rounded).
---   background = "white" (default), "black", "gray", "R,G,B" or {r, g, b}:
---     the colour transparent pixels (a PNG's alpha channel or tRNS chunk)
---     are composited over, v = (a v + (255 - a) bg + 127) // 255; a gray
---     image uses the colour's luma. A pixel of alpha 0 is the background,
---     whatever colour the file stores under it.
---   crop = "center" (default) or "random": the window a batch takes by
---     default, see Dataset:batch.
---   flip = false (default) or true: the default of Dataset:batch's flip.
---   strict = false (default): an unreadable or corrupt file is skipped:
---     each is reported as "glow.data.images: skipped PATH: reason" on
---     stderr, or given to on_skip(path, reason) when set; then one line
---     "glow.data.images: skipped N of M files" on stderr, and ds.skipped =
---     N (0 when none). strict = true: the first such file makes the load
---     fail instead (nil, message naming the file).
---   on_skip = function(path, reason): see strict; also told of the files of
---     other formats and the second names left out.
---   max_pixels = n (default 89478485, Pillow's MAX_IMAGE_PIXELS): a file
---     whose header says more pixels is a bad file (skipped, or the error
---     with strict), refused before any of its memory is taken.
---
--- Decoding is bounded in memory and work (docs/DATA.md, "Decoding"): PNG
--- rows and JPEG scanlines are fit to load_size as they are decoded; a JPEG
--- at least twice the target each way is decoded smaller by libjpeg's DCT
--- scaling; a progressive JPEG of more than 100 scans is a bad file; the
--- decodes running at once hold at most 256 MiB of working memory together
--- (a larger one runs alone); a file whose memory cannot be had is skipped.
function M.images(dir, opts)
  check_string(dir, "images: dir")
  opts = util.check_options(opts, IMAGE_OPTS, "images")
  local o = folder_opts(opts, "images")
  local crop = crop_opt(opts.crop, "center", "images: crop")
  local flip = flip_opt(opts.flip, false, "images: flip")
  local c, skips, total = core.load_images(dir, o.lh or 0, o.lw or 0, o.c or 0, o.strict, o.bg, o.max_pixels)
  if not c then return nil, skips end
  if o.oh then c:set_window(o.oh, o.ow) end
  local ds = wrap(c, "images " .. dir)
  local n = report_skips("glow.data.images", skips, total, o.on_skip)
  ds.skipped, ds.other_formats, ds.duplicates, ds._flip, ds._crop = n.corrupt, n.format, n.duplicate, flip, crop
  return ds
end

local PACK_FOLDER_OPTS = { size = true, channels = true, load_size = true, strict = true,
  on_skip = true, limit = true, background = true, max_pixels = true }
local PACK_DATASET_OPTS = { size = true, channels = true, ["repeat"] = true, flip = true, limit = true }

--- Pack images into one file that open_pack maps (for sets larger than
--- memory). source: a folder (opts as in images: size, load_size, channels,
--- strict, on_skip, background, max_pixels; the file holds the load_size images) or a Dataset (its
--- stored images; opts.size and opts.channels convert and fit them,
--- opts["repeat"] = k writes k copies, copy after copy, flip = true mirrors
--- every second copy left-right). opts.limit = n stops after n images.
--- Images are decoded, converted, resized and written one at a time to a
--- temporary file beside path, renamed into place when complete.
--- Returns the number of images written (and, for a folder, the number of
--- files skipped), or nil, message. The format: docs/FORMAT.md.
function M.pack(source, path, opts)
  check_string(path, "pack: path")
  if type(source) == "string" then
    opts = util.check_options(opts, PACK_FOLDER_OPTS, "pack")
    local o = folder_opts(opts, "pack")
    local limit = int_opt(opts.limit, 0, "pack: limit", 1)
    local n, skips, total = core.pack_images(source, path, o.lh or 0, o.lw or 0, o.c or 0, o.strict, limit, o.bg,
      o.max_pixels)
    if not n then return nil, skips end
    return n, report_skips("glow.data.pack", skips, total, o.on_skip).corrupt
  end
  if getmetatable(source) ~= Dataset then
    error("pack: source must be a folder path or a glow.data.Dataset, got " .. type(source), 0)
  end
  opts = util.check_options(opts, PACK_DATASET_OPTS, "pack")
  local h, w = size_opt(opts.size, "pack: size")
  local c = opts.channels
  if c ~= nil and c ~= 1 and c ~= 3 then
    error("pack: channels must be 1 or 3, got " .. describe_value(c), 0)
  end
  local rep = int_opt(opts["repeat"], 1, "pack: repeat", 1)
  local flip = flip_opt(opts.flip, false, "pack: flip")
  local limit = int_opt(opts.limit, 0, "pack: limit", 1)
  return core.pack_dataset(source._c, path, source.class_names, h or 0, w or 0, c or 0, rep, flip, limit)
end

local OPEN_PACK_OPTS = { size = true, crop = true, flip = true }

--- A Dataset over a packed file (glow.data.pack), opened read-only: the
--- images stay in the file and the page cache, not in the process's memory;
--- each batch reads its images (pread), so the resident set stays bounded
--- over a long training run. A file that changes while open (truncated, or
--- copied over) makes the next batch raise "PATH: changed while in use
--- (...)". opts: size (the window a batch takes, at most the stored size;
--- default the stored size), crop and flip (the defaults of Dataset:batch),
--- as in images. Returns nil, message for a missing, truncated or malformed
--- file.
function M.open_pack(path, opts)
  check_string(path, "open_pack: path")
  opts = util.check_options(opts, OPEN_PACK_OPTS, "open_pack")
  local h, w = size_opt(opts.size, "open_pack: size")
  local crop = crop_opt(opts.crop, "center", "open_pack: crop")
  local flip = flip_opt(opts.flip, false, "open_pack: flip")
  local c, err = core.open_pack(path)
  if not c then return nil, err end
  if h then
    local s = c:stored_shape()
    if h > s[1] or w > s[2] then
      error(string.format("open_pack: size %dx%d must lie within the stored size %dx%d", h, w, s[1], s[2]), 0)
    end
    c:set_window(h, w)
  end
  local ds = wrap(c, "pack " .. path)
  ds._flip, ds._crop = flip, crop
  return ds
end

--- A permutation of 1..n determined by (seed, epoch) alone (Fisher-Yates in C).
function M.permutation(n, seed, epoch)
  return core.permutation(n, seed or 0, epoch or 0)
end

------------------------------------------------------------------------ Dataset
function Dataset:size() return self._c:size() end
--- {h, w, c} of a batch's images (the window; see Dataset:batch)
function Dataset:shape() return self._c:shape() end
--- {h, w, c} of the stored images (the load size; equal to shape() unless
--- a window smaller than the stored images was asked for)
function Dataset:stored_shape() return self._c:stored_shape() end
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

--- The dataset's default augmentation: flip (boolean) and crop ("center"
--- or "random"), as batch and batches use them unless told otherwise.
function Dataset:augmentation()
  return { flip = self._flip or false, crop = self._crop or "center" }
end

--- Set the dataset's default augmentation: {flip = bool, crop = "center"
--- | "random"} (either may be left out). A random crop needs images stored
--- larger than the window (load_size, or a pack opened with a smaller size).
function Dataset:set_augmentation(opts)
  opts = util.check_options(opts, { flip = true, crop = true }, "set_augmentation")
  if opts.flip ~= nil then self._flip = flip_opt(opts.flip, false, "set_augmentation: flip") end
  if opts.crop ~= nil then self._crop = crop_opt(opts.crop, "center", "set_augmentation: crop") end
  return self
end

--- The file each image came from (a Lua array, in dataset order) for a
--- dataset from glow.data.images, else nil.
function Dataset:paths()
  return self._c:paths()
end

local function bool_opt(v, default, what)
  if v == nil then return default end
  if type(v) ~= "boolean" then error(string.format("%s must be a boolean, got %s", what, type(v)), 0) end
  return v
end

local PRE_OPTS = { n_bits = true, seed = true, epoch = true, noise = true, flip = true, crop = true }

local function pre_opts(opts, what)
  return int_opt(opts.n_bits, 8, what .. ": n_bits", 1, 8), int_opt(opts.seed, 0, what .. ": seed", 0),
    int_opt(opts.epoch, 0, what .. ": epoch", 0), bool_opt(opts.noise, true, what .. ": noise")
end

-- flip, crop_random from opts, the dataset's defaults where absent
local function aug_opts(self, opts, what)
  local flip = flip_opt(opts.flip, self._flip or false, what .. ": flip")
  local crop = crop_opt(opts.crop, self._crop or "center", what .. ": crop")
  return flip, crop == "random"
end

--- x, y for a Lua array of 1-based image indices: x a float tensor
--- {b, h, w, c} preprocessed, y the 0-based labels (nil when unlabelled).
--- opts: n_bits = 8, seed = 0, epoch = 0, noise = true,
--- crop = "center" | "random" and flip = false | true (defaults: those
--- given to images/open_pack, else "center" and false).
--- Each image yields an h x w window (ds:shape()) of its stored image
--- (ds:stored_shape()): the centre ((H - h) // 2, (W - w) // 2), or with
--- crop = "random" an offset drawn per image; flip = true mirrors the window
--- left-right for about half the images. Offsets and flips come from a hash
--- of (seed, epoch, image index) on a stream apart from the noise's: the
--- same for the same seed and epoch whatever the batch size, order or
--- start, new in another epoch. With flip false, crop "center" and a window
--- the stored size, a batch is exactly what it was before windows existed.
function Dataset:batch(indices, opts)
  if type(indices) ~= "table" then error("batch: indices must be a Lua array, got " .. type(indices), 0) end
  opts = util.check_options(opts, PRE_OPTS, "batch")
  local n_bits, seed, epoch, noise = pre_opts(opts, "batch")
  local flip, crop_random = aug_opts(self, opts, "batch")
  return self._c:batch(indices, n_bits, seed, epoch, noise, flip, crop_random)
end

local BATCH_OPTS = { size = true, shuffle = true, seed = true, epoch = true, start = true,
  n_bits = true, drop_last = true, limit = true, noise = true, ranks = true, flip = true, crop = true }

--- Iterate over one epoch: for x, y in ds:batches{...} do ... end.
--- opts: size = 64, shuffle = false, seed = 0, epoch = 0, start = 1 (the
--- 1-based batch to begin at, to resume an interrupted epoch), n_bits = 8,
--- drop_last = false, limit = nil (use only the first limit images; all
--- of them when there are fewer),
--- noise = true, ranks = nil, flip and crop (as in Dataset:batch). The
--- shuffle, the noise, the windows and the flips depend on (seed, epoch)
--- and the image only, so resuming at start = k repeats them.
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
  local flip, crop_random = aug_opts(self, opts, "batches")
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
    return c:batch(idx, n_bits, seed, epoch, noise, flip, crop_random)
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
