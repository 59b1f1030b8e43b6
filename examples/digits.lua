--- scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes;
--- Debian package python3-sklearn) as a folder of 8x8 grayscale PNG files,
--- one subfolder per digit, which glow.data.images reads as a labelled
--- dataset (a small second data set: out-of-distribution checks, quick runs).
---
---   lua5.4 examples/digits.lua OUTDIR [--csv PATH] [--layout 8x8|mnist]
---
--- PATH (default the Debian copy,
--- /usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz) holds
--- one image a row: 64 values 0..16 (row-major), then the label. Image k
--- (the k-th row, 1-based) goes to OUTDIR/<label>/<kkkk>.png, its values
--- scaled to v * 255 / 16 rounded, 0 the background as in Fashion-MNIST.
--- The PNG files are written by glow's own writer (glow.image.save_grid).
local glow = require "glow"
local options = require "glow.cli.options"
local make_dirs = require("glow.cli.common").make_dirs

local NAME = "examples/digits.lua"
local DEFAULT_CSV = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"

local function fail(msg, ...)
  error(select("#", ...) > 0 and string.format(msg, ...) or msg, 0)
end

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function parse(argv)
  local o = options.parse(NAME, argv, { csv = { "string", DEFAULT_CSV, help = "the digits CSV (.gz or plain)" },
    layout = { "string", "8x8", choices = { "8x8", "mnist" },
      help = "8x8: the images as they are; mnist: enlarged to 20x20 by glow's resize and centred in a 28x28 black "
        .. "frame, as MNIST lays out its digits" } },
    { args = { { "outdir", "the folder to write (one subfolder per digit)" } },
      description = "scikit-learn's 8x8 handwritten digits as a folder of PNG files." })
  o.out = o.args.outdir
  return o
end

--- Make dir and the folders above it that are missing (mkdir -p).
local function mkdirs(dir)
  local ok, err = make_dirs(dir)
  if not ok then fail("%s", err) end
end

--- The preprocessed value that save_grid writes back as byte b:
--- floor((x + 0.5) * 256) = b for x = (b + 0.5) / 256 - 0.5.
local X_OF = {}
for v = 0, 16 do X_OF[v] = (math.floor(v * 255 / 16 + 0.5) + 0.5) / 256 - 0.5 end

--- The 64 values and the label of one CSV row, or an error naming the row.
local function parse_row(line, row, flat)
  local n = 0
  local label
  for field in line:gmatch("[^,]+") do
    n = n + 1
    local v = tonumber(field)
    if v == nil or v ~= math.floor(v) then fail("row %d: field %d '%s' is not an integer", row, n, field) end
    v = math.tointeger(v)
    if n <= 64 then
      if v < 0 or v > 16 then fail("row %d: value %d is %d, outside 0..16", row, n, v) end
      flat[n] = X_OF[v]
    else
      label = v
    end
  end
  if n ~= 65 then fail("row %d has %d fields, not 64 values and a label", row, n) end
  if label < 0 or label > 9 then fail("row %d: label %d is outside 0..9", row, label) end
  return label
end

--- The 8x8 folder src rewritten into dst as MNIST lays digits out: each
--- enlarged to 20x20 by glow's resize (bilinear), centred in a 28x28 frame
--- of background (0). Returns the number of images.
local function mnist_layout(src, dst)
  local ds = assert(glow.data.images(src, { size = 20, channels = 1, strict = true }))
  local paths, n = ds:paths(), ds:size()
  local idx = {}
  for i = 1, n do idx[i] = i end
  local x = ds:batch(idx, { noise = false }) -- bin centres: (v + 0.5) / 256 - 0.5
  local bg = (0 + 0.5) / 256 - 0.5
  local side = glow.full({ n, 20, 4, 1 }, bg)
  x = glow.cat({ side, x, side }, 3) -- {n, 20, 28, 1}
  local top = glow.full({ n, 4, 28, 1 }, bg)
  x = glow.cat({ top, x, top }, 2) -- {n, 28, 28, 1}
  for i = 1, n do
    local rel = paths[i]:sub(#src + 2)
    mkdirs(dst .. "/" .. rel:match("^(.*)/[^/]*$"))
    local saved, why = glow.image.save_grid(dst .. "/" .. rel, x:narrow(1, i, 1), { cols = 1, padding = 0 })
    if not saved then fail("%s", why) end
  end
  return n
end

local function main(argv)
  local o = parse(argv)
  local final = o.out
  if o.layout == "mnist" then -- the 8x8 files go to a scratch folder first
    o.out = os.tmpname()
    os.remove(o.out)
  end
  local f = io.open(o.csv, "rb")
  if not f then
    fail("cannot read %s (the digits of scikit-learn: apt-get install python3-sklearn, or give --csv PATH)", o.csv)
  end
  f:close()
  local cmd = "gzip -dc -- " .. shell_quote(o.csv)
  if not o.csv:match("%.gz$") then cmd = "cat -- " .. shell_quote(o.csv) end
  local errfile = os.tmpname() -- what gzip says, for the message when it fails
  local p = io.popen(cmd .. " 2>" .. shell_quote(errfile))
  if not p then
    os.remove(errfile)
    fail("cannot run %s", cmd)
  end

  mkdirs(o.out)
  local made, flat, n, row = {}, {}, 0, 0
  local shape = { 1, 8, 8, 1 }
  local ok, err = pcall(function()
    for line in p:lines() do
      row = row + 1
      line = line:gsub("%s+$", "")
      if line ~= "" then
        local label = parse_row(line, row, flat)
        local dir = o.out .. "/" .. label
        if not made[label] then
          mkdirs(dir)
          made[label] = true
        end
        local path = string.format("%s/%04d.png", dir, row)
        local saved, why = glow.image.save_grid(path, glow.Tensor.from(flat, shape), { cols = 1, padding = 0 })
        if not saved then fail("%s", why) end
        n = n + 1
      end
    end
  end)
  local closed, how, code = p:close()
  local ef = io.open(errfile, "r")
  local said = ef and ef:read("a"):gsub("^%s+", ""):gsub("%s+$", ""):gsub("\n", "; ") or ""
  if ef then ef:close() end
  os.remove(errfile)
  if not closed then fail("%s failed (%s %s)%s", cmd, how, tostring(code), said ~= "" and ": " .. said or "") end
  if not ok then error(err, 0) end
  if n == 0 then fail("%s holds no rows", o.csv) end
  if o.layout == "mnist" then
    local ok2, err2 = pcall(mnist_layout, o.out, final)
    os.execute("rm -rf " .. shell_quote(o.out))
    if not ok2 then error(err2, 0) end
    o.out = final
  end
  print(string.format("wrote %d images to %s (%s)", n, o.out, o.layout == "mnist" and
    "20x20 in a 28x28 frame, MNIST's layout" or "8x8"))
end

local ok, err = pcall(main, arg)
if not ok then
  io.stderr:write(NAME, ": ", tostring(err), "\n")
  os.exit(1)
end
