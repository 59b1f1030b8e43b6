local H = require "spec.helper"
local glow = H.glow
local core = require "glow.core"

-- Image folders (PNG and JPEG, nested, resized, windows and flips) and
-- packed files. Every test writes its own small images into a fresh
-- temporary directory: PNG through glow.image.save_grid, JPEG through
-- core.jpeg_write (libjpeg, there for the specs).
local tmpdir, rmdir, write = H.tmpdir, H.rmdir, H.write

local mkdir = H.mkdir

local function save_png(path, values, h, w, c)
  local x = {}
  for i, v in ipairs(values) do x[i] = (v + 0.5) / 256 - 0.5 end
  assert(glow.image.save_grid(path, glow.Tensor.from(x, { 1, h, w, c })))
end

local function bytes(values)
  local t = {}
  for i, v in ipairs(values) do t[i] = string.char(v) end
  return table.concat(t)
end

local function save_jpeg(path, values, h, w, c, quality)
  assert(core.jpeg_write(path, bytes(values), h, w, c, quality or 100))
end

local function const(v, n)
  local t = {}
  for i = 1, n do t[i] = v end
  return t
end

local bytes_back = H.bytes_back

-- image k (1-based) of a batch as a flat list
local function image(list, k, d)
  local out = {}
  for i = 1, d do out[i] = list[(k - 1) * d + i] end
  return out
end

local range = H.range

-- a 6x6 gray image whose pixel (y, x) is 10 * y + x + base (0-based y, x)
local function grid6(base)
  local t = {}
  for y = 0, 5 do
    for x = 0, 5 do t[#t + 1] = 10 * y + x + (base or 0) end
  end
  return t
end

-- the h x w window at (y0, x0) of a 6x6 image, mirrored when flipped
local function window(img, y0, x0, h, w, flipped)
  local out = {}
  for y = 0, h - 1 do
    for x = 0, w - 1 do
      local sx = flipped and (w - 1 - x) or x
      out[#out + 1] = img[(y0 + y) * 6 + x0 + sx + 1]
    end
  end
  return out
end

local function same(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

-- which window of img a batch image is: "y0,x0,f" (f = 1 when flipped), or nil
local function which_window(img, got, h, w)
  for y0 = 0, 6 - h do
    for x0 = 0, 6 - w do
      for _, f in ipairs { false, true } do
        if same(window(img, y0, x0, h, w, f), got) then return y0 .. "," .. x0 .. "," .. (f and 1 or 0) end
      end
    end
  end
  return nil
end

-- n copies of the 6x6 grid image, as PNG files img01.png ..
local function grid_folder(n)
  local dir = tmpdir()
  for i = 1, n do save_png(string.format("%s/img%02d.png", dir, i), grid6(), 6, 6, 1) end
  return dir
end

describe("glow.data.images on a folder tree", function()
  it("reads JPEG and PNG files of mixed sizes in nested folders, sorted by path", function()
    local dir = tmpdir()
    mkdir(dir .. "/x/y")
    mkdir(dir .. "/.hidden")
    save_jpeg(dir .. "/c.JPEG", (function()
      local t = {}
      for _ = 1, 16 do t[#t + 1] = 200; t[#t + 1] = 40; t[#t + 1] = 90 end
      return t
    end)(), 4, 4, 3)
    save_png(dir .. "/x/a.png", const(100, 64), 8, 8, 1)
    save_jpeg(dir .. "/x/y/b.jpg", const(200, 128), 16, 8, 1)
    save_png(dir .. "/.hidden/h.png", const(1, 16), 4, 4, 1)
    save_png(dir .. "/x/.h.png", const(1, 16), 4, 4, 1)
    write(dir .. "/x/notes.txt", "not an image")
    assert(os.execute("ln -s '" .. dir .. "' '" .. dir .. "/x/loop'")) -- a loop: walked once
    local ds = assert(glow.data.images(dir, { size = 4, channels = 1 }))
    assert.equal(3, ds:size())
    assert.is_nil(ds.classes)
    assert.same({ 4, 4, 1 }, ds:shape())
    assert.same({ 4, 4, 1 }, ds:stored_shape())
    assert.equal(0, ds.skipped)
    local got = bytes_back(ds:batch({ 1, 2, 3 }, { noise = false }))
    -- c.JPEG: RGB (200, 40, 90) to gray: (299 * 200 + 587 * 40 + 114 * 90 + 500) // 1000 = 94,
    -- within JPEG's rounding of the colour transform
    for i = 1, 16 do assert.is_true(math.abs(got[i] - 94) <= 2, "c.JPEG pixel " .. got[i]) end
    assert.same(const(100, 16), image(got, 2, 16)) -- 8x8 -> 4x4: a constant stays constant
    assert.same(const(200, 16), image(got, 3, 16)) -- 16x8: the centre 8x8, shrunk
    rmdir(dir)
  end)

  it("labels each top-level subfolder with its whole subtree as a class", function()
    local dir = tmpdir()
    mkdir(dir .. "/cat/deep/er")
    mkdir(dir .. "/dog")
    save_jpeg(dir .. "/cat/deep/er/1.jpg", const(50, 16), 4, 4, 1)
    save_png(dir .. "/cat/2.png", const(60, 16), 4, 4, 1)
    save_png(dir .. "/dog/1.png", const(70, 4), 2, 2, 1)
    local ds = assert(glow.data.images(dir))
    assert.same({ "cat", "dog" }, ds.class_names)
    assert.same({ 0, 0, 1 }, ds:labels())
    local x, y = ds:batch({ 1, 2, 3 }, { noise = false })
    assert.same({ 0, 0, 1 }, y)
    local got = bytes_back(x)
    assert.same(const(60, 16), image(got, 1, 16)) -- cat/2.png sorts before cat/deep/...
    assert.same(const(50, 16), image(got, 2, 16))
    assert.same(const(70, 16), image(got, 3, 16)) -- 2x2 -> 4x4: bilinear keeps a constant
    rmdir(dir)
  end)

  it("takes size and load_size as {h, w}, fitting (cover, then the centre) before the window", function()
    local dir = tmpdir()
    -- 2x4: left half 0, right half 200; fit to 2x2 keeps the centre columns 1..2
    save_png(dir .. "/a.png", { 0, 0, 200, 200, 0, 0, 200, 200 }, 2, 4, 1)
    local ds = assert(glow.data.images(dir, { size = { 2, 2 } }))
    assert.same({ 0, 200, 0, 200 }, bytes_back(ds:batch({ 1 }, { noise = false })))
    ds = assert(glow.data.images(dir, { size = { 1, 2 }, load_size = { 2, 4 } }))
    assert.same({ 2, 4, 1 }, ds:stored_shape())
    assert.same({ 1, 2, 1 }, ds:shape())
    -- the centre window: row (2 - 1) // 2 = 0, columns (4 - 2) // 2 = 1..2
    assert.same({ 0, 200 }, bytes_back(ds:batch({ 1 }, { noise = false })))
    assert.has_error(function() glow.data.images(dir, { size = 4, load_size = 3 }) end,
      "images: load_size 3x3 must be at least size 4x4")
    assert.has_error(function() glow.data.images(dir, { channels = 2 }) end, "images: channels must be 1 or 3, got 2")
    assert.has_error(function() glow.data.images(dir, { crop = "middle" }) end,
      "images: crop must be 'center' or 'random', got middle")
    rmdir(dir)
  end)
end)

describe("Dataset windows and flips", function()
  local N = 24

  it("takes the centre window by default and leaves batches unchanged without flip or crop", function()
    local dir = grid_folder(2)
    local plain = assert(glow.data.images(dir))
    local ds = assert(glow.data.images(dir, { size = 4, load_size = 6 }))
    assert.same({ 4, 4, 1 }, ds:shape())
    assert.same(window(grid6(), 1, 1, 4, 4, false), image(bytes_back(ds:batch({ 1 }, { noise = false })), 1, 16))
    -- noise and all: the same tensor as a dataset without the options (exact: the same generator)
    local opts = { seed = 3, epoch = 2 }
    local a = plain:batch({ 1, 2 }, opts)
    local b = assert(glow.data.images(dir, { size = 6 })):batch({ 1, 2 }, opts)
    assert.tensor_equal(a, b)
    rmdir(dir)
  end)

  it("flips per image, the same for the same seed and epoch, new in another epoch", function()
    local dir = grid_folder(N)
    local ds = assert(glow.data.images(dir))
    local function pattern(opts)
      local got, t = bytes_back(ds:batch(range(1, N), opts)), {}
      for k = 1, N do
        local w = which_window(grid6(), image(got, k, 36), 6, 6)
        assert.is_not_nil(w)
        t[k] = w
      end
      return table.concat(t, " ")
    end
    local e1 = pattern { flip = true, seed = 1, epoch = 1, noise = false }
    assert.equal(e1, pattern { flip = true, seed = 1, epoch = 1, noise = false })
    assert.not_equal(e1, pattern { flip = true, seed = 1, epoch = 2, noise = false })
    assert.not_equal(e1, pattern { flip = true, seed = 2, epoch = 1, noise = false })
    assert.matches("0,0,1", e1)
    assert.matches("0,0,0", e1)
    assert.equal(string.rep("0,0,0", N, " "), pattern { seed = 1, epoch = 1, noise = false })
    -- the dataset's default, and the batch option over it
    local flipping = assert(glow.data.images(dir, { flip = true }))
    local ds_default = bytes_back(flipping:batch(range(1, N), { seed = 1, epoch = 1, noise = false }))
    assert.same(bytes_back(ds:batch(range(1, N), { flip = true, seed = 1, epoch = 1, noise = false })), ds_default)
    assert.same(bytes_back(ds:batch(range(1, N), { noise = false })),
      bytes_back(flipping:batch(range(1, N), { flip = false, noise = false })))
    rmdir(dir)
  end)

  it("draws random windows per image, restored when an epoch resumes at a later batch", function()
    local dir = grid_folder(N)
    local ds = assert(glow.data.images(dir, { size = 4, load_size = 6, crop = "random", flip = true }))
    local opts = { size = 5, shuffle = true, seed = 7, epoch = 3 }
    local all = {}
    for x in ds:batches(opts) do all[#all + 1] = x end
    assert.equal(5, #all)
    -- resume at the third batch: the same tensors (windows, flips and noise), bit for bit
    opts.start = 3
    local k = 3
    for x in ds:batches(opts) do
      assert.tensor_equal(all[k], x)
      k = k + 1
    end
    assert.equal(6, k)
    -- each image is a 4x4 window of the grid; the windows vary over images and epochs
    local function windows(epoch)
      local got, seen, t = bytes_back(ds:batch(range(1, N), { seed = 7, epoch = epoch, noise = false })), {}, {}
      for i = 1, N do
        local w = which_window(grid6(), image(got, i, 16), 4, 4)
        assert.is_not_nil(w)
        seen[w:sub(1, 3)] = true
        t[i] = w
      end
      local offsets = 0
      for _ in pairs(seen) do offsets = offsets + 1 end
      return table.concat(t, " "), offsets
    end
    local w3, offsets = windows(3)
    assert.is_true(offsets >= 4, "only " .. offsets .. " distinct offsets")
    assert.equal(w3, (windows(3)))
    assert.not_equal(w3, (windows(4)))
    -- the same windows whatever the batch size: image i alone
    local alone = bytes_back(ds:batch({ 5 }, { seed = 7, epoch = 3, noise = false }))
    local parts = {}
    for w in w3:gmatch("%S+") do parts[#parts + 1] = w end
    assert.equal(parts[5], which_window(grid6(), alone, 4, 4))
    -- crop = "center" overrides the dataset's default
    local c = bytes_back(ds:batch({ 1 }, { crop = "center", flip = false, noise = false }))
    assert.same(window(grid6(), 1, 1, 4, 4, false), c)
    rmdir(dir)
  end)
end)

describe("glow.data.images with corrupt files", function()
  local function corrupt_folder()
    local dir = tmpdir()
    local noise = {}
    for i = 1, 32 * 32 do noise[i] = (i * 37 + (i // 7) * 11) % 256 end
    save_jpeg(dir .. "/a.jpg", noise, 32, 32, 1, 90)
    save_png(dir .. "/b.png", const(9, 1024), 32, 32, 1)
    write(dir .. "/c.jpg", "\255\216\255\224 this is not really a JPEG")
    local f = assert(io.open(dir .. "/a.jpg", "rb"))
    local full = f:read("a")
    f:close()
    write(dir .. "/d.jpg", full:sub(1, #full // 2))
    return dir
  end

  it("are an error with strict = true, naming the first bad file", function()
    local dir = corrupt_folder()
    local ds, err = glow.data.images(dir, { strict = true })
    assert.is_nil(ds)
    assert.matches("c%.jpg: corrupt or unsupported JPEG %(", err)
    rmdir(dir)
  end)

  it("are skipped by default (strict = false), one report each, and counted", function()
    local dir = corrupt_folder()
    local seen = {}
    local ds = assert(glow.data.images(dir, { on_skip = function(path, reason)
      seen[#seen + 1] = { path, reason }
    end }))
    assert.equal(2, ds:size())
    assert.equal(2, ds.skipped)
    assert.equal(2, #seen)
    assert.equal(dir .. "/c.jpg", seen[1][1])
    assert.equal(dir .. "/d.jpg", seen[2][1])
    assert.matches("^corrupt or unsupported JPEG", seen[1][2])
    assert.matches("Premature end of JPEG file", seen[2][2])
    assert.same(const(9, 1024), image(bytes_back(ds:batch({ 1, 2 }, { noise = false })), 2, 1024))
    rmdir(dir)
  end)

  it("says each skipped file on one line of stderr, then the count", function()
    local dir = corrupt_folder()
    local script = string.format([[
      package.path = %q .. "lua/?.lua;" .. %q .. "lua/?/init.lua;" .. package.path
      package.cpath = %q .. "/?.so;" .. package.cpath
      local ds = assert(require("glow").data.images(%q, { strict = false }))
      io.write(ds:size(), " ", ds.skipped)]], H.root, H.root, os.getenv("GLOW_BUILD") or (H.root .. "build"), dir)
    write(dir .. "/run.lua", script)
    local p = assert(io.popen("lua5.4 '" .. dir .. "/run.lua' 2> '" .. dir .. "/err.txt'"))
    local out = p:read("a")
    p:close()
    assert.equal("2 2", out)
    local lines = {}
    for line in io.lines(dir .. "/err.txt") do lines[#lines + 1] = line end
    assert.equal(3, #lines)
    assert.matches("^glow%.data%.images: skipped .*/c%.jpg: corrupt or unsupported JPEG", lines[1])
    assert.matches("^glow%.data%.images: skipped .*/d%.jpg: corrupt or unsupported JPEG %(Premature end", lines[2])
    assert.equal("glow.data.images: skipped 2 of 4 files", lines[3])
    rmdir(dir)
  end)
end)

describe("glow.data.images and pack on hostile files", function()
  local F = require "spec.hostile_files"

  -- The children below measure memory (a peak, an address-space limit):
  -- under spec/sanitize.sh, whose ASan runtime keeps freed memory in
  -- quarantine and reserves terabytes of address space, they run without
  -- it, against the plain build (as spec/isa_spec.lua's do).
  local sanitized = os.getenv("LD_PRELOAD") ~= nil
  local child_build = sanitized and (H.root .. "build") or os.getenv("GLOW_BUILD") or (H.root .. "build")

  -- run script (a file) in a child process, after prefix (shell words):
  -- exit code, stdout, stderr
  local function run_child(script, err, prefix)
    local inner = string.format("%s LUA_PATH=\"lua/?.lua;lua/?/init.lua;;\" LUA_CPATH=\"%s/?.so;;\" "
      .. "exec lua5.4 \"%s\"", prefix or "", child_build, script)
    local cmd = string.format("cd %q && %s sh -c '%s' 2>%q", H.root, sanitized and "env -u LD_PRELOAD" or "", inner,
      err)
    local p = io.popen(cmd)
    local out = p:read("a")
    local _, _, code = p:close()
    return code, out, H.read(err) or ""
  end

  -- run body (Lua, with glow and dir bound) in a child process; its stdout
  -- ends with the child's peak resident set in KiB (VmHWM). Returns exit
  -- code, stdout, stderr lines, peak KiB, seconds.
  local function child(dir, body, prefix)
    local script = dir .. "/../child.lua"
    write(script, "local glow = require 'glow'\nlocal dir = " .. string.format("%q", dir) .. "\n" .. body .. [[

      for line in io.lines("/proc/self/status") do
        local kb = line:match("^VmHWM:%s*(%d+)")
        if kb then io.write(" hwm=", kb) end
      end]])
    local t0 = os.time()
    local code, out, err = run_child(script, dir .. "/../stderr.txt", prefix)
    local lines = {}
    for line in err:gmatch("[^\n]+") do lines[#lines + 1] = line end
    return code, out, lines, tonumber(out:match("hwm=(%d+)")), os.time() - t0
  end

  local function synth(path, ...) assert(core.synth_image(path, ...)) end

  it("skips an image whose header says more than max_pixels (89478485), PNG or JPEG, valid or lying, before "
    .. "taking its memory; with strict it is the error", function()
    local top = tmpdir()
    local dir = top .. "/set"
    mkdir(dir)
    synth(dir .. "/ok.png", "png", 32, 32, 3, "smooth")
    -- valid files: 9500x9500 zeros (90 MB of pixels in 90 KB), and 16384x16384
    -- flat JPEGs, baseline (3.9 MB) and progressive (0.8 MB)
    synth(dir .. "/big.png", "png", 9500, 9500, 1, "zero")
    write(dir .. "/base.jpg", F.jpeg_flat(16384, 16384, 3))
    write(dir .. "/prog.jpg", F.jpeg_flat(16384, 16384, 3, { progressive = true }))
    -- a 32x32 PNG whose IHDR claims 100000x100000, padded past what 10^10
    -- RGB pixels compress to, so the file-size check lets it through
    write(dir .. "/lie.png", F.png_claiming(F.read(dir .. "/ok.png"), 100000, 100000, 29 * 2 ^ 20))
    local code, out, lines, hwm, secs = child(dir, [[
      local ds = assert(glow.data.images(dir, { size = 16 }))
      io.write(ds:size(), " ", ds.skipped)]])
    assert.equal(0, code)
    assert.matches("^1 4", out)
    local function over(name, w, h)
      return string.format("glow.data.images: skipped %s/%s: its header says %dx%d pixels, over the limit of "
        .. "89478485 (max_pixels)", dir, name, w, h)
    end
    assert.same({ over("base.jpg", 16384, 16384), over("big.png", 9500, 9500), over("lie.png", 100000, 100000),
      over("prog.jpg", 16384, 16384), "glow.data.images: skipped 4 of 5 files" }, lines)
    assert.is_true(hwm < 64 * 1024, "peak " .. hwm .. " KiB")
    assert.is_true(secs < 30)
    -- the same for a pack; strict makes the first the error
    local n, skipped = glow.data.pack(dir, top .. "/p.glowpack", { size = 16, on_skip = function() end })
    assert.same({ 1, 4 }, { n, skipped })
    local ds, err = glow.data.images(dir, { size = 16, strict = true })
    assert.is_nil(ds)
    assert.equal(dir .. "/base.jpg: its header says 16384x16384 pixels, over the limit of 89478485 (max_pixels)", err)
    -- max_pixels moves the limit (32 x 32 = 1024)
    for _, name in ipairs { "base.jpg", "big.png", "lie.png", "prog.jpg" } do os.remove(dir .. "/" .. name) end
    synth(dir .. "/gray.png", "png", 20, 30, 1, "smooth")
    local seen = {}
    ds = assert(glow.data.images(dir, { max_pixels = 1023, on_skip = function(path) seen[#seen + 1] = path end }))
    assert.same({ dir .. "/ok.png" }, seen)
    assert.equal(1, ds:size())
    ds = assert(glow.data.images(dir, { max_pixels = 1024 }))
    assert.equal(2, ds:size())
    assert.has_error(function() glow.data.images(dir, { max_pixels = 0 }) end,
      "images: max_pixels must be an integer >= 1, got 0")
    assert.has_error(function() glow.data.pack(dir, top .. "/p.glowpack", { max_pixels = 1.5 }) end,
      "pack: max_pixels must be an integer >= 1, got 1.5")
    rmdir(top)
  end)

  it("stops a progressive JPEG at its 101st scan: skipped with the usual line, in seconds", function()
    local top = tmpdir()
    local dir = top .. "/set"
    mkdir(dir)
    synth(dir .. "/ok.png", "png", 32, 32, 1, "smooth")
    -- one DC scan, then redundant AC scans: each a pass over every block
    write(dir .. "/s100.jpg", F.jpeg_flat(256, 256, 1, { progressive = true, ac_scans = 99 }))
    write(dir .. "/s101.jpg", F.jpeg_flat(256, 256, 1, { progressive = true, ac_scans = 100 }))
    -- 4096x4096 with 1000 scans (45 KB): without the limit, seconds of work
    write(dir .. "/s1000.jpg", F.jpeg_flat(4096, 4096, 3, { progressive = true, ac_scans = 999 }))
    local code, out, lines, _, secs = child(dir, [[
      local ds = assert(glow.data.images(dir, { size = 16 }))
      io.write(ds:size(), " ", table.concat(ds:paths(), " "))]])
    assert.equal(0, code)
    assert.matches("^2 " .. dir .. "/ok.png " .. dir .. "/s100.jpg", out)
    local scans = "corrupt or unsupported JPEG %(more than 100 scans; a progressive file has about 10%)"
    assert.equal(3, #lines)
    assert.matches("^glow%.data%.images: skipped .*/s1000%.jpg: " .. scans .. "$", lines[1])
    assert.matches("^glow%.data%.images: skipped .*/s101%.jpg: " .. scans .. "$", lines[2])
    assert.equal("glow.data.images: skipped 2 of 4 files", lines[3])
    assert.is_true(secs < 30)
    rmdir(top)
  end)

  -- file (alone in a folder) at its own size, then fit by glow_fit: the
  -- whole-image path, against the folder path at size
  local function both_ways(dir, size, c)
    local native = assert(glow.data.images(dir))
    local path = dir .. "/../fit.glowpack"
    assert(glow.data.pack(native, path, { size = size, channels = c }))
    local whole = bytes_back(assert(glow.data.open_pack(path)):batch({ 1 }, { noise = false }))
    local rows = bytes_back(assert(glow.data.images(dir, { size = size, channels = c })):batch({ 1 },
      { noise = false }))
    return whole, rows
  end

  it("decodes a JPEG at least twice its target's size smaller by DCT scaling, close to the full decode", function()
    local top = tmpdir()
    local dir = top .. "/one"
    mkdir(dir)
    for _, k in ipairs { { 1024, 1536, 3, 95 }, { 1000, 1000, 1, 90 } } do
      synth(dir .. "/a.jpg", "jpeg", k[1], k[2], k[3], "smooth", k[4])
      -- 32 and 64: 1/8 scale; 200: 1/4 (1/2 for the 1000); 400: 1/2 (none for the 1000)
      for _, size in ipairs { 32, 64, 200, 400 } do
        for _, c in ipairs { 1, 3 } do
          local whole, rows = both_ways(dir, size, c)
          local worst, sum = 0, 0
          for i = 1, #whole do
            local d = math.abs(whole[i] - rows[i])
            worst, sum = math.max(worst, d), sum + d
          end
          local what = string.format("%dx%dx%d at %d, %d channels: largest difference %d, mean %.3f", k[1], k[2], k[3],
            size, c, worst, sum / #whole)
          assert.is_true(worst <= 3 and sum / #whole <= 0.5, what)
        end
      end
    end
    rmdir(top)
  end)

  it("decodes a PNG row by row into the fit, the same bytes as fitting the whole image", function()
    local top = tmpdir()
    local dir = top .. "/one"
    mkdir(dir)
    -- plain and interlaced (held whole), RGB and gray, each to gray and RGB,
    -- shrunk, the same size and enlarged; and a JPEG too small to be scaled
    for _, k in ipairs { { "a.png", 300, 451, 3, false }, { "a.png", 257, 199, 1, true },
      { "a.png", 120, 80, 3, true }, { "a.jpg", 90, 70, 3, false } } do
      os.remove(dir .. "/a.png")
      os.remove(dir .. "/a.jpg")
      synth(dir .. "/" .. k[1], k[1]:match("jpg$") and "jpeg" or "png", k[2], k[3], k[4], "photo", 90, k[5], 7)
      for _, size in ipairs { 50, 80, 131 } do
        for _, c in ipairs { 1, 3 } do
          local whole, rows = both_ways(dir, size, c)
          assert.same(whole, rows)
        end
      end
    end
    rmdir(top)
  end)

  it("decodes at once only as many images as 256 MiB of working memory holds", function()
    local top = tmpdir()
    local dir = top .. "/set"
    mkdir(dir)
    -- a 7000x7000 progressive JPEG holds 147 MB of DCT coefficients while
    -- it decodes: two would hold 294 MB, over the budget, so one waits
    write(dir .. "/a.jpg", F.jpeg_flat(7000, 7000, 3, { progressive = true }))
    write(dir .. "/b.jpg", F.jpeg_flat(7000, 7000, 3, { progressive = true }))
    local code, out, _, hwm = child(dir, [[
      local ds = assert(glow.data.images(dir, { size = 8 }))
      io.write(ds:size())]], "OMP_NUM_THREADS=2")
    assert.equal(0, code)
    assert.matches("^2 ", out)
    assert.is_true(hwm < 260 * 1024, "peak " .. hwm .. " KiB")
    rmdir(top)
  end)

  it("skips a file whose memory cannot be had and goes on with the next", function()
    local top = tmpdir()
    local dir = top .. "/set"
    mkdir(dir)
    synth(dir .. "/a.png", "png", 32, 32, 1, "smooth")
    -- an interlaced PNG is decoded whole: 9000 x 9000 x 3 = 243 MB
    synth(dir .. "/b.png", "png", 9000, 9000, 3, "zero", 90, true)
    synth(dir .. "/c.png", "png", 32, 32, 1, "smooth")
    -- the child's address space: what a process has after loading glow, and 100 MiB
    local probe = top .. "/vm.lua"
    write(probe, [[require "glow"
      for line in io.lines("/proc/self/status") do
        local kb = line:match("^VmSize:%s*(%d+)")
        if kb then io.write(kb) end
      end]])
    local _, kb = run_child(probe, top .. "/stderr.txt")
    local limit = tonumber(kb) + 100 * 1024
    local code, out, lines = child(dir, [[
      local n, skipped = glow.data.pack(dir, dir .. "/../p.glowpack", { size = 16 })
      io.write(tostring(n), " ", tostring(skipped))]], "ulimit -v " .. limit .. ";")
    assert.equal(0, code, table.concat(lines, "\n"))
    assert.matches("^2 1", out)
    assert.same({ "glow.data.pack: skipped " .. dir .. "/b.png: out of memory decoding its 9000x9000 pixels",
      "glow.data.pack: skipped 1 of 3 files" }, lines)
    rmdir(top)
  end)

  it("reports a dangling symbolic link or a loop of links as a bad file: a skip line, or the error with strict",
    function()
      local top = tmpdir()
      local dir = top .. "/set"
      mkdir(dir .. "/a")
      mkdir(dir .. "/b")
      synth(dir .. "/a/1.png", "png", 8, 8, 1, "smooth")
      synth(dir .. "/b/2.png", "png", 8, 8, 1, "smooth")
      assert(os.execute(string.format("ln -s gone.png %q && ln -s self.jpg %q && ln -s /nonexistent/dir %q", dir
        .. "/a/dangling.png", dir .. "/b/self.jpg", dir .. "/c")))
      local code, out, lines = child(dir, [[
        local ds = assert(glow.data.images(dir))
        io.write(ds:size(), " ", ds.skipped, " ", ds.classes)]])
      assert.equal(0, code)
      -- the link at the top level belongs to no class: the classes stay a and b
      assert.matches("^2 3 2 ", out)
      assert.same({
        "glow.data.images: skipped " .. dir .. "/c: a dangling symbolic link (to /nonexistent/dir, which does not "
          .. "exist)",
        "glow.data.images: skipped " .. dir .. "/a/dangling.png: a dangling symbolic link (to gone.png, which does not "
          .. "exist)",
        "glow.data.images: skipped " .. dir .. "/b/self.jpg: a symbolic link in a loop of links (to self.jpg)",
        "glow.data.images: skipped 3 of 5 files" }, lines)
      local ds, err = glow.data.images(dir, { strict = true })
      assert.is_nil(ds)
      assert.equal(dir .. "/c: a dangling symbolic link (to /nonexistent/dir, which does not exist)", err)
      os.remove(dir .. "/c")
      ds, err = glow.data.images(dir, { strict = true })
      assert.is_nil(ds)
      assert.equal(dir .. "/a/dangling.png: a dangling symbolic link (to gone.png, which does not exist)", err)
      local n
      n, err = glow.data.pack(dir .. "/b", top .. "/p.glowpack", { strict = true })
      assert.is_nil(n)
      assert.equal(dir .. "/b/self.jpg: a symbolic link in a loop of links (to self.jpg)", err)
      rmdir(top)
    end)
end)

describe("glow.data.images on files it does not read twice or at all", function()
  -- run glow.data.images(dir) in a child process: its stdout and stderr lines
  local function load_in_child(dir, expr)
    local script = string.format([[
      package.path = %q .. "lua/?.lua;" .. %q .. "lua/?/init.lua;" .. package.path
      package.cpath = %q .. "/?.so;" .. package.cpath
      local ds, err = require("glow").data.images(%q)
      if not ds then io.write("nil ", err) return end
      io.write(%s)]], H.root, H.root, os.getenv("GLOW_BUILD") or (H.root .. "build"), dir, expr)
    write(dir .. "/../run.lua", script)
    local p = assert(io.popen("lua5.4 '" .. dir .. "/../run.lua' 2> '" .. dir .. "/../err.txt'"))
    local out = p:read("a")
    p:close()
    local lines = {}
    for line in io.lines(dir .. "/../err.txt") do lines[#lines + 1] = line end
    return out, lines
  end

  it("counts the files of other image formats by extension and names the first, on one line", function()
    local top = tmpdir()
    local dir = top .. "/set"
    mkdir(dir .. "/a")
    save_png(dir .. "/a/1.png", const(10, 16), 4, 4, 1)
    save_png(dir .. "/2.png", const(20, 16), 4, 4, 1)
    for _, name in ipairs { "a/b.gif", "c.GIF", "d.webp", "e.txt" } do write(dir .. "/" .. name, "not read") end
    local out, lines = load_in_child(dir, [[ds:size(), " ", ds.skipped, " ", ds.other_formats]])
    assert.equal("2 0 3", out)
    assert.same({ "glow.data.images: skipped 3 files of other formats (.gif 2, .webp 1; glow reads PNG and JPEG): "
      .. "first " .. dir .. "/c.GIF" }, lines)
    -- on_skip hears of each; a folder of other formats only says what it holds
    local seen = {}
    assert(glow.data.images(dir, { on_skip = function(path, reason) seen[path] = reason end }))
    assert.equal("another image format (.gif)", seen[dir .. "/a/b.gif"])
    assert.equal("another image format (.webp)", seen[dir .. "/d.webp"])
    os.remove(dir .. "/2.png")
    rmdir(dir .. "/a")
    local ds, err = glow.data.images(dir)
    assert.is_nil(ds)
    assert.equal(dir .. ": no image files (.png, .jpg, .jpeg), only 2 files of other formats (first " .. dir
      .. "/c.GIF)", err)
    rmdir(top)
  end)

  it("reads a file reached through a link once, under the class of its real name, and says so", function()
    local top = tmpdir()
    local dir = top .. "/set"
    mkdir(dir .. "/class_a")
    mkdir(dir .. "/class_b")
    save_png(dir .. "/class_a/x.png", const(10, 16), 4, 4, 1)
    save_png(dir .. "/class_b/y.png", const(20, 16), 4, 4, 1)
    -- "a_link" sorts before "x.png"; the real name is kept all the same
    assert(os.execute("ln -s ../class_b/y.png '" .. dir .. "/class_a/a_link.png'"))
    assert(os.execute("ln -s ../class_a/x.png '" .. dir .. "/class_b/link.png'"))
    local out, lines = load_in_child(dir, [[ds:size(), " ", ds.duplicates, " ", table.concat(ds:labels(), ","), " ",
      table.concat(ds:paths(), " ")]])
    assert.equal(string.format("2 2 0,1 %s/class_a/x.png %s/class_b/y.png", dir, dir), out)
    assert.same({ string.format("glow.data.images: skipped 2 second names of files already read (links), each "
      .. "file read once: first %s/class_a/a_link.png is %s/class_b/y.png", dir, dir) }, lines)
    -- a class whose every file is another class's is an error
    os.remove(dir .. "/class_b/y.png")
    save_png(dir .. "/class_a/y.png", const(20, 16), 4, 4, 1)
    assert(os.execute("ln -sf ../class_a/y.png '" .. dir .. "/class_b/y.png'"))
    local ds, err = glow.data.images(dir)
    assert.is_nil(ds)
    assert.equal("class folder " .. dir .. "/class_b holds no image of its own: each of its files is another name "
      .. "(a link) of a file in another class", err)
    rmdir(top)
  end)
end)

describe("glow.data.images and pack with transparent pixels", function()
  -- a 2x2 RGBA PNG: red under alpha 0, red at alpha 128, opaque blue, opaque
  -- green; and a 2x2 gray + alpha PNG: 7 under alpha 0, then opaque 9, 10, 11
  local function alpha_folder()
    local dir = tmpdir()
    write(dir .. "/a.png", H.encode_png(2, 2, 8, 6, { "\255\0\0\0\255\0\0\128", "\0\0\255\255\0\255\0\255" }))
    write(dir .. "/b.png", H.encode_png(2, 2, 8, 4, { "\7\0\9\255", "\10\255\11\255" }))
    return dir
  end

  it("composites them over the background: white by default, black, or R,G,B; in a pack too", function()
    local dir = alpha_folder()
    local function pixels(ds) return bytes_back(ds:batch({ 1, 2 }, { noise = false })) end
    -- (a v + (255 - a) bg + 127) // 255; the gray image becomes RGB after compositing
    local ds = assert(glow.data.images(dir, { channels = 3 }))
    assert.same({ 255, 255, 255, 255, 127, 127, 0, 0, 255, 0, 255, 0,
      255, 255, 255, 9, 9, 9, 10, 10, 10, 11, 11, 11 }, pixels(ds))
    ds = assert(glow.data.images(dir, { channels = 3, background = "black" }))
    assert.same({ 0, 0, 0, 128, 0, 0, 0, 0, 255, 0, 255, 0,
      0, 0, 0, 9, 9, 9, 10, 10, 10, 11, 11, 11 }, pixels(ds))
    -- the gray image over a colour takes its luma: (299 * 10 + 587 * 20 + 114 * 30 + 500) // 1000 = 18
    local path = dir .. "/p.glowpack"
    assert(glow.data.pack(dir, path, { channels = 3, background = "10,20,30" }))
    ds = assert(glow.data.open_pack(path))
    assert.same({ 10, 20, 30, 133, 10, 15, 0, 0, 255, 0, 255, 0,
      18, 18, 18, 9, 9, 9, 10, 10, 10, 11, 11, 11 }, pixels(ds))
    assert.has_error(function() glow.data.images(dir, { background = "pink" }) end,
      "images: background must be white, black, gray, \"R,G,B\" or {r, g, b} with each in 0..255, got 'pink'")
    rmdir(dir)
  end)
end)

describe("glow.data.pack and open_pack", function()
  local function class_folder()
    local dir = tmpdir()
    for _, cls in ipairs { "b", "a" } do mkdir(dir .. "/" .. cls) end
    save_png(dir .. "/a/1.png", grid6(0), 6, 6, 1)
    save_jpeg(dir .. "/a/2.jpg", const(120, 64), 8, 8, 1)
    save_png(dir .. "/b/1.png", grid6(100), 6, 6, 1)
    save_png(dir .. "/b/2.png", grid6(50), 6, 6, 1)
    return dir
  end

  it("packs a folder that reopens with the same batches as loading it", function()
    local dir = class_folder()
    local path = dir .. "/set.glowpack"
    local n, skipped = glow.data.pack(dir, path, { size = 6 })
    assert.equal(4, n)
    assert.equal(0, skipped)
    local mem = assert(glow.data.images(dir, { size = 6 }))
    local map = assert(glow.data.open_pack(path))
    assert.equal(4, map:size())
    assert.same(mem:shape(), map:shape())
    assert.same(mem.class_names, map.class_names)
    assert.equal(mem.classes, map.classes)
    assert.same(mem:labels(), map:labels())
    local opts = { size = 3, shuffle = true, seed = 4, epoch = 1 }
    local it = map:batches(opts)
    for x, y in mem:batches(opts) do
      local x2, y2 = it()
      assert.tensor_equal(x, x2) -- the same bytes through the same preprocessing
      assert.same(y, y2)
    end
    -- a window and flips on the mapped set, as on the in-memory one
    local win = assert(glow.data.open_pack(path, { size = 4, crop = "random", flip = true }))
    local memwin = assert(glow.data.images(dir, { size = 4, load_size = 6, crop = "random", flip = true }))
    assert.tensor_equal(memwin:batch({ 1, 2, 3, 4 }, { seed = 2 }), win:batch({ 1, 2, 3, 4 }, { seed = 2 }))
    assert.has_error(function() glow.data.open_pack(path, { size = 7 }) end,
      "open_pack: size 7x7 must lie within the stored size 6x6")
    rmdir(dir)
  end)

  it("returns nil and a message for a missing, truncated or foreign file", function()
    local dir = class_folder()
    local path = dir .. "/set.glowpack"
    assert(glow.data.pack(dir, path, { size = 6 }))
    local f = assert(io.open(path, "rb"))
    local full = f:read("a")
    f:close()
    local ds, err = glow.data.open_pack(dir .. "/missing.glowpack")
    assert.is_nil(ds)
    assert.matches("cannot open .*missing%.glowpack: No such file", err)
    write(dir .. "/short.glowpack", full:sub(1, #full - 1))
    ds, err = glow.data.open_pack(dir .. "/short.glowpack")
    assert.is_nil(ds)
    assert.matches("short%.glowpack: truncated: " .. (#full - 1) .. " bytes, its header says 4 images of 6x6x1", err)
    write(dir .. "/long.glowpack", full .. "x")
    ds, err = glow.data.open_pack(dir .. "/long.glowpack")
    assert.is_nil(ds)
    assert.matches("long%.glowpack: longer than its header says", err)
    write(dir .. "/magic.glowpack", "GLOWPACX" .. full:sub(9))
    ds, err = glow.data.open_pack(dir .. "/magic.glowpack")
    assert.is_nil(ds)
    assert.matches("magic%.glowpack: not a glow pack file %(bad magic%)", err)
    write(dir .. "/tiny.glowpack", "GLOWPACK")
    ds, err = glow.data.open_pack(dir .. "/tiny.glowpack")
    assert.is_nil(ds)
    assert.matches("tiny%.glowpack: truncated", err)
    -- a label outside the classes
    local bad = full:sub(1, 48 + 5 + 5) .. string.pack("<i4", 7) .. full:sub(48 + 5 + 5 + 5)
    write(dir .. "/label.glowpack", bad)
    ds, err = glow.data.open_pack(dir .. "/label.glowpack")
    assert.is_nil(ds)
    assert.matches("label%.glowpack: image 1 has label 7, expected 0%.%.1", err)
    -- nothing is left beside a pack that could not be written
    local n2, err2 = glow.data.pack(dir, "/nonexistent/dir/set.glowpack")
    assert.is_nil(n2)
    assert.matches("cannot write /nonexistent/dir/set%.glowpack", err2)
    rmdir(dir)
  end)

  it("packs a dataset with repeat, flip, size, channels and limit", function()
    local dir = class_folder()
    local src = assert(glow.data.images(dir, { size = 6 }))
    local path = dir .. "/rep.glowpack"
    assert.equal(10, glow.data.pack(src, path, { ["repeat"] = 3, flip = true, channels = 3, limit = 10 }))
    local ds = assert(glow.data.open_pack(path))
    assert.equal(10, ds:size())
    assert.same({ 6, 6, 3 }, ds:shape())
    assert.same(src.class_names, ds.class_names)
    local labels = src:labels()
    assert.same({ labels[1], labels[2], labels[3], labels[4], labels[1], labels[2], labels[3], labels[4],
      labels[1], labels[2] }, ds:labels())
    local got = bytes_back(ds:batch(range(1, 10), { noise = false }))
    local orig = bytes_back(src:batch({ 1 }, { noise = false }))
    local function gray(k) -- image k of the pack, its first channel
      local t = {}
      for i = 1, 36 do t[i] = got[(k - 1) * 108 + 3 * (i - 1) + 1] end
      return t
    end
    assert.same(orig, gray(1))
    assert.same(orig, gray(9)) -- copy 2: not flipped
    local mirrored = {}
    for y = 0, 5 do
      for x = 0, 5 do mirrored[#mirrored + 1] = orig[y * 6 + (5 - x) + 1] end
    end
    assert.same(mirrored, gray(5)) -- copy 1: flipped
    -- size: fit (here a 2x shrink to the block means of a constant: the constant)
    assert(glow.data.pack(src, path, { size = 3 }))
    ds = assert(glow.data.open_pack(path))
    assert.same({ 3, 3, 1 }, ds:shape())
    assert.same(const(120, 9), bytes_back(ds:batch({ 2 }, { noise = false })))
    -- a dataset from the IDX loader keeps its class names, labels and bytes
    local fm = glow.data.fashion_mnist("test")
    if fm then
      assert.equal(5, glow.data.pack(fm, path, { limit = 5 }))
      ds = assert(glow.data.open_pack(path))
      assert.same(fm.class_names, ds.class_names)
      assert.same(fm:labels(1, 5), ds:labels())
      assert.tensor_equal(fm:batch(range(1, 5), { seed = 1 }), ds:batch(range(1, 5), { seed = 1 }))
    end
    -- a dataset opened from a pack packs again, its images read from the file
    local again, m = dir .. "/again.glowpack", ds:size()
    assert.equal(m, glow.data.pack(ds, again))
    assert.same(bytes_back(ds:batch(range(1, m), { noise = false })),
      bytes_back(assert(glow.data.open_pack(again)):batch(range(1, m), { noise = false })))
    assert.has_error(function() glow.data.pack({}, path) end,
      "pack: source must be a folder path or a glow.data.Dataset, got table")
    rmdir(dir)
  end)

  -- VmHWM of this process in MiB: the most memory it has held so far
  local function peak_mib()
    for l in io.lines("/proc/self/status") do
      local v = l:match("^VmHWM:%s+(%d+)")
      if v then return tonumber(v) / 1024 end
    end
  end

  it("refuses a data offset past what the header can need, before taking memory for it", function()
    local dir = class_folder()
    local path = dir .. "/set.glowpack"
    assert(glow.data.pack(dir, path, { size = 6 }))
    local full = H.read(path)
    -- the header of 4 images of 6x6x1 in 2 classes, its data at 2 GiB, in a
    -- sparse file of 2 GiB + 144 bytes (its length agrees with the header)
    local at = 2 ^ 31 // 1
    local hdr = full:sub(1, 40) .. string.pack("<I8", at) .. full:sub(49, 4096)
    write(dir .. "/far.glowpack", hdr)
    assert(os.execute(string.format("truncate -s %d '%s/far.glowpack'", at + 144, dir)))
    local before = peak_mib()
    local ds, err = glow.data.open_pack(dir .. "/far.glowpack")
    assert.is_nil(ds)
    -- at most 48 + 2 x (4 + 4096) + 4 x 4 bytes, rounded up to 4096
    assert.equal(dir .. "/far.glowpack: bad header: data offset 2147483648 lies past the 12288 bytes a header "
      .. "of 2 class names and 4 labels can take", err)
    assert.is_true(peak_mib() - before < 64, "the peak grew by " .. (peak_mib() - before) .. " MiB")
    -- unlabelled: the fixed part and the alignment only
    hdr = full:sub(1, 36) .. string.pack("<I4I8", 0, 8192) .. full:sub(49, 4096)
    write(dir .. "/far0.glowpack", hdr .. string.rep("\0", 4096 + 144))
    ds, err = glow.data.open_pack(dir .. "/far0.glowpack")
    assert.is_nil(ds)
    assert.matches("far0%.glowpack: bad header: data offset 8192 lies past the 4096 bytes a header of 0 class names "
      .. "and 0 labels can take", err)
    rmdir(dir)
  end)

  it("leaves no room for labels of skipped files: the data moves down to the offset the images need", function()
    local dir = class_folder()
    -- 1100 unreadable files in class a reserve 1104 labels' room (past one
    -- page); 4 images remain
    for i = 1, 1100 do write(string.format("%s/a/bad%04d.png", dir, i), "not a png") end
    local path = dir .. "/set.glowpack"
    local n, skipped = glow.data.pack(dir, path, { size = 6, on_skip = function() end })
    assert.equal(4, n)
    assert.equal(1100, skipped)
    assert.equal(4096 + 4 * 36, H.size(path))
    assert.equal(4096, (string.unpack("<I8", H.read(path), 41)))
    local ds = assert(glow.data.open_pack(path))
    local mem = assert(glow.data.images(dir, { size = 6, on_skip = function() end }))
    assert.same(mem:labels(), ds:labels())
    assert.same(bytes_back(mem:batch(range(1, 4), { noise = false })),
      bytes_back(ds:batch(range(1, 4), { noise = false })))
    rmdir(dir)
  end)

  -- run a Lua script in a child process (env: its environment's
  -- additions): its exit code and output
  local function child(dir, body, env)
    write(dir .. "/child.lua", string.format([[
      package.path = %q .. "lua/?.lua;" .. %q .. "lua/?/init.lua;" .. package.path
      package.cpath = %q .. "/?.so;" .. package.cpath
      local glow = require "glow"
    ]], H.root, H.root, os.getenv("GLOW_BUILD") or (H.root .. "build")) .. body)
    local p = assert(io.popen((env or "") .. " lua5.4 '" .. dir .. "/child.lua' 2>&1"))
    local out = p:read("a")
    local _, _, code = p:close()
    return code, out
  end

  -- both ways of reading a pack: out of its mapping through the kernel
  -- (process_vm_readv), and pread (where the first is refused)
  for _, how in ipairs { "", "GLOW_PACK_READ=pread" } do
    it("reads the same batches " .. (how == "" and "from the mapping" or "with " .. how), function()
      local dir = class_folder()
      local path = dir .. "/set.glowpack"
      assert(glow.data.pack(dir, path, { size = 6 }))
      local code, out = child(dir, string.format([[
        local ds = assert(glow.data.open_pack(%q, { size = 4, crop = "random", flip = true }))
        for _, idx in ipairs { { 1, 2, 3, 4 }, { 4, 2, 3, 1 }, { 3 } } do
          print(table.concat(ds:batch(idx, { seed = 3, flip = false, crop = "center" }):totable(), " "))
          print(table.concat(ds:batch(idx, { seed = 3 }):totable(), " "))
        end
      ]], path), how)
      assert.equal(0, code, out)
      local want = {}
      local win = assert(glow.data.images(dir, { size = 4, load_size = 6, crop = "random", flip = true }))
      for _, idx in ipairs { { 1, 2, 3, 4 }, { 4, 2, 3, 1 }, { 3 } } do
        want[#want + 1] = table.concat(win:batch(idx, { seed = 3, flip = false, crop = "center" }):totable(), " ")
        want[#want + 1] = table.concat(win:batch(idx, { seed = 3 }):totable(), " ")
      end
      assert.equal(table.concat(want, "\n") .. "\n", out)
      rmdir(dir)
    end)
  end

  for _, how in ipairs { "", "GLOW_PACK_READ=pread" } do
    it("raises one line naming the file, not SIGBUS, when the file shrinks or is rewritten while open"
      .. (how == "" and "" or " (" .. how .. ")"), function()
      local dir = class_folder()
      local path = dir .. "/set.glowpack"
      assert(glow.data.pack(dir, path, { size = 6 }))
      local len = H.size(path)
      -- truncate -s 4096 under an open pack: the next batch fails, the
      -- process goes on
      local code, out = child(dir, string.format([[
        local ds = assert(glow.data.open_pack(%q))
        assert(ds:batch({ 1, 2, 3, 4 }))
        assert(os.execute("truncate -s 4096 '%s'"))
        for _ = 1, 2 do print(select(2, pcall(ds.batch, ds, { 4, 2 }))) end
        print(select(2, pcall(function() for x in ds:batches { size = 2 } do assert(x) end end)))
        print("still running")
      ]], path, path), how)
      assert.equal(0, code, out)
      local says = path .. ": changed while in use (now 4096 bytes, was " .. len .. ")"
      assert.equal(string.rep(says .. "\n", 3) .. "still running\n", out)
      -- cp over it (rsync --inplace alike): the same length, other bytes
      assert(glow.data.pack(dir, path, { size = 6 }))
      local other = dir .. "/other.glowpack"
      assert(glow.data.pack(dir, other, { size = 6, channels = 1, limit = 4 }))
      local f = assert(io.open(other, "r+b"))
      f:seek("set", 4096)
      f:write(string.rep("\255", 36))
      f:close()
      -- an old modification time, so the copy's is another whatever the clock's grain
      assert(os.execute(string.format("touch -d '2001-02-03 04:05:06' '%s'", path)))
      code, out = child(dir, string.format([[
        local ds = assert(glow.data.open_pack(%q))
        assert(ds:batch({ 1 }))
        assert(os.execute("cp '%s' '%s'"))
        print(select(2, pcall(ds.batch, ds, { 1 })))
        print("still running")
      ]], path, other, path), how)
      assert.equal(0, code, out)
      assert.equal(path .. ": changed while in use (modified since it was opened)\nstill running\n", out)
      rmdir(dir)
    end)
  end

  it("names the path when a folder stands at the target", function()
    local dir, out = class_folder(), tmpdir()
    local path = out .. "/set.glowpack"
    mkdir(path)
    local n, err = glow.data.pack(dir, path, { size = 6 })
    assert.is_nil(n)
    assert.equal("cannot write " .. path .. ": Is a directory", err)
    n, err = glow.data.pack(assert(glow.data.images(dir, { size = 6 })), path)
    assert.is_nil(n)
    assert.equal("cannot write " .. path .. ": Is a directory", err)
    assert.same({ "set.glowpack" }, H.listdir(out)) -- no temporary file left
    rmdir(dir)
    rmdir(out)
  end)
end)
