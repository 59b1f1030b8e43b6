local H = require "spec.helper"
local glow = H.glow

local tmpdir, rmdir = H.tmpdir, H.rmdir

local write = H.write

local read = H.read

local listdir = H.listdir

local encode_png, chunk, zlib_stored = H.encode_png, H.png_chunk, H.zlib_stored

local bytes_back = H.bytes_back

local function from_bytes(values, shape)
  local x = {}
  for i, v in ipairs(values) do x[i] = (v + 0.5) / 256 - 0.5 end
  return glow.Tensor.from(x, shape)
end

describe("glow.image.save_grid", function()
  it("round-trips one image through read_png exactly, gray and RGB", function()
    local dir = tmpdir()
    for _, c in ipairs { 1, 3 } do
      local vals = {}
      for i = 1, 5 * 7 * c do vals[i] = (i * 53 + c) % 256 end
      vals[1], vals[2] = 0, 255
      local x = from_bytes(vals, { 1, 5, 7, c })
      local path = dir .. "/one" .. c .. ".png"
      assert.is_true(glow.image.save_grid(path, x))
      local back = assert(glow.image.read_png(path))
      assert.same({ 1, 5, 7, c }, back:shape())
      -- 8-bit values written and read back: exact
      assert.tensor_equal(x, back)
    end
    rmdir(dir)
  end)

  it("maps values by floor((x + 0.5) * 256) and clips outside [-0.5, 0.5]", function()
    local dir = tmpdir()
    local x = glow.Tensor.from({ -0.5, -3, 0, 0.5, 7, 0.25, 0 / 0, -0.49 }, { 1, 2, 4, 1 })
    assert(glow.image.save_grid(dir .. "/clip.png", x))
    assert.same({ 0, 0, 128, 255, 255, 192, 0, 2 }, bytes_back(glow.image.read_png(dir .. "/clip.png")))
    rmdir(dir)
  end)

  it("lays images out in rows of cols with black padding between", function()
    local dir = tmpdir()
    -- three 2x2 gray images filled with 50, 100, 150
    local vals = {}
    for k = 1, 3 do
      for _ = 1, 4 do vals[#vals + 1] = 50 * k end
    end
    local x = from_bytes(vals, { 3, 2, 2, 1 })
    assert(glow.image.save_grid(dir .. "/g.png", x, { cols = 2, padding = 1 }))
    local g = glow.image.read_png(dir .. "/g.png")
    assert.same({ 1, 5, 5, 1 }, g:shape())
    assert.same({
      50, 50, 0, 100, 100,
      50, 50, 0, 100, 100,
      0, 0, 0, 0, 0,
      150, 150, 0, 0, 0,
      150, 150, 0, 0, 0,
    }, bytes_back(g))
    assert(glow.image.save_grid(dir .. "/row.png", x, { cols = 8, padding = 0 }))
    assert.same({ 1, 2, 6, 1 }, glow.image.read_png(dir .. "/row.png"):shape())
    rmdir(dir)
  end)

  it("enlarges each image scale times, nearest neighbour, the padding as given", function()
    local dir = tmpdir()
    -- two 1x2 RGB images: (10, 20, 30) (40, 50, 60), then (70, 80, 90) (100, 110, 120)
    local vals = {}
    for i = 1, 12 do vals[i] = 10 * i end
    local x = from_bytes(vals, { 2, 1, 2, 3 })
    assert(glow.image.save_grid(dir .. "/big.png", x, { cols = 2, padding = 1, scale = 2 }))
    local g = glow.image.read_png(dir .. "/big.png")
    assert.same({ 1, 2, 9, 3 }, g:shape())
    local row = { 10, 20, 30, 10, 20, 30, 40, 50, 60, 40, 50, 60, 0, 0, 0,
      70, 80, 90, 70, 80, 90, 100, 110, 120, 100, 110, 120 }
    assert.same(table.move(row, 1, #row, #row + 1, table.move(row, 1, #row, 1, {})), bytes_back(g))
    -- scale 1 is the grid as it was
    assert(glow.image.save_grid(dir .. "/one.png", x, { cols = 2, scale = 1 }))
    assert.same({ 1, 1, 5, 3 }, glow.image.read_png(dir .. "/one.png"):shape())
    rmdir(dir)
  end)

  it("replaces an existing file and leaves no temporary file behind", function()
    local dir = tmpdir()
    local path = dir .. "/s.png"
    write(path, "old contents")
    assert(glow.image.save_grid(path, H.data({ 4, 3, 3, 3 }, 1), { cols = 2 }))
    assert.same({ "s.png" }, listdir(dir))
    assert.same({ 1, 7, 7, 3 }, glow.image.read_png(path):shape())
    rmdir(dir)
  end)

  it("returns nil and a message for an unwritable path", function()
    local ok, err = glow.image.save_grid("/nonexistent/glow-dir/s.png", H.data({ 1, 2, 2, 1 }, 1))
    assert.is_nil(ok)
    assert.equal("cannot write /nonexistent/glow-dir/s.png: No such file or directory", err)
  end)

  it("raises on a bad tensor or option", function()
    assert.has_error(function() glow.image.save_grid("/tmp/x.png", glow.Tensor { 1, 2, 2, 2 }) end,
      "save_grid: x must have 1 (gray) or 3 (RGB) channels, got shape {1, 2, 2, 2}")
    assert.has_error(function() glow.image.save_grid("/tmp/x.png", glow.Tensor { 4, 4 }) end,
      "save_grid: x: got shape {4, 4}, expected {n, h, w, c}")
    assert.has_error(function() glow.image.save_grid("/tmp/x.png", glow.Tensor { 1, 2, 2, 1 }, { rows = 2 }) end,
      "save_grid: unknown option 'rows' (known: cols, format, padding, quality, scale)")
    assert.has_error(function() glow.image.save_grid("/tmp/x.png", glow.Tensor { 1, 2, 2, 1 }, { cols = 0 }) end,
      "save_grid: cols must be an integer >= 1, got 0")
    assert.has_error(function() glow.image.save_grid("/tmp/x.png", glow.Tensor { 1, 2, 2, 1 }, { scale = 0 }) end,
      "save_grid: scale must be an integer in 1..64, got 0")
  end)
end)

describe("glow.image.save_grid as JPEG", function()
  it("writes a JPEG for a .jpg or .jpeg name (or format = 'jpeg'), a PNG otherwise", function()
    local dir = tmpdir()
    local vals = {}
    for i = 1, 2 * 8 * 8 do vals[i] = 40 + (i % 8) * 20 end
    local x = from_bytes(vals, { 2, 8, 8, 1 })
    for _, case in ipairs { { "g.jpg", "\255\216\255" }, { "g.JPEG", "\255\216\255" }, { "g.png", "\137PNG" },
      { "g.out", "\137PNG" } } do
      assert(glow.image.save_grid(dir .. "/" .. case[1], x, { cols = 2, quality = 100 }))
      assert.equal(case[2], read(dir .. "/" .. case[1]):sub(1, #case[2]), case[1])
    end
    assert(glow.image.save_grid(dir .. "/forced.png", x, { format = "jpeg" }))
    assert.equal("\255\216\255", read(dir .. "/forced.png"):sub(1, 3))
    -- the JPEG reads back as the grid (8x17, padding 1), within JPEG's error at quality 100
    H.mkdir(dir .. "/j")
    os.rename(dir .. "/g.jpg", dir .. "/j/g.jpg")
    local ds = assert(glow.data.images(dir .. "/j"))
    assert.same({ 8, 17, 1 }, ds:shape())
    local back = bytes_back(ds:batch({ 1 }, { noise = false }))
    local worst = 0
    for r = 0, 7 do
      for c = 0, 7 do worst = math.max(worst, math.abs(back[r * 17 + c + 1] - vals[r * 8 + c + 1])) end
    end
    assert.is_true(worst <= 3, "largest difference " .. worst)
    -- no temporary file is left behind
    assert.same({ "forced.png", "g.JPEG", "g.out", "g.png", "j" }, listdir(dir))
    assert.has_error(function() glow.image.save_grid(dir .. "/q.jpg", x, { quality = 0 }) end,
      "save_grid: quality must be an integer in 1..100, got 0")
    assert.has_error(function() glow.image.save_grid(dir .. "/q.jpg", x, { format = "gif" }) end,
      "save_grid: format must be 'png' or 'jpeg', got gif")
    rmdir(dir)
  end)
end)

describe("glow.image.read_png", function()
  local function roundtrip(w, h, depth, ctype, rows, palette, chunks, opts)
    local dir = tmpdir()
    local path = dir .. "/t.png"
    write(path, encode_png(w, h, depth, ctype, rows, palette, chunks))
    local x, err = glow.image.read_png(path, opts)
    rmdir(dir)
    assert(x, err)
    return x
  end

  it("reads 8-bit gray and RGB files written by another encoder", function()
    local x = roundtrip(3, 2, 8, 0, { "\1\2\3", "\200\201\255" })
    assert.same({ 1, 2, 3, 1 }, x:shape())
    assert.same({ 1, 2, 3, 200, 201, 255 }, bytes_back(x))
    x = roundtrip(2, 1, 8, 2, { "\10\20\30\40\50\60" })
    assert.same({ 1, 1, 2, 3 }, x:shape())
    assert.same({ 10, 20, 30, 40, 50, 60 }, bytes_back(x))
  end)

  it("composites gray + alpha and RGBA over the background, white by default", function()
    -- a transparent pixel is the background whatever colour the file stores under it
    local x = roundtrip(2, 1, 8, 4, { "\7\0\9\255" })
    assert.same({ 1, 1, 2, 1 }, x:shape())
    assert.same({ 255, 9 }, bytes_back(x))
    assert.same({ 0, 9 }, bytes_back(roundtrip(2, 1, 8, 4, { "\7\0\9\255" }, nil, nil, { background = "black" })))
    -- a gray image over a colour: the colour's luma (299 * 255 + 500) // 1000
    assert.same({ 76, 9 }, bytes_back(roundtrip(2, 1, 8, 4, { "\7\0\9\255" }, nil, nil, { background = "255,0,0" })))
    -- red stored under alpha 0, then red at alpha 128: (a v + (255 - a) bg + 127) // 255
    local rows = { "\255\0\0\0", "\255\0\0\128" }
    x = roundtrip(1, 2, 8, 6, rows)
    assert.same({ 1, 2, 1, 3 }, x:shape())
    assert.same({ 255, 255, 255, 255, 127, 127 }, bytes_back(x))
    assert.same({ 0, 0, 0, 128, 0, 0 }, bytes_back(roundtrip(1, 2, 8, 6, rows, nil, nil, { background = "black" })))
    local blue = { background = { 0, 0, 255 } }
    assert.same({ 0, 0, 255, 128, 0, 127 }, bytes_back(roundtrip(1, 2, 8, 6, rows, nil, nil, blue)))
  end)

  it("composites a palette's or a colour's tRNS transparency over the background", function()
    -- palette entry 0 (red) transparent, entry 1 (green) opaque
    local x = roundtrip(2, 1, 8, 3, { "\0\1" }, "\255\0\0\0\255\0", { tRNS = "\0" })
    assert.same({ 1, 1, 2, 3 }, x:shape())
    assert.same({ 255, 255, 255, 0, 255, 0 }, bytes_back(x))
    -- gray 7 marked transparent
    x = roundtrip(2, 1, 8, 0, { "\7\8" }, nil, { tRNS = string.pack(">I2", 7) }, { background = "black" })
    assert.same({ 1, 1, 2, 1 }, x:shape())
    assert.same({ 0, 8 }, bytes_back(x))
  end)

  it("refuses a malformed background", function()
    for _, bad in ipairs { "purple", "1,2", "256,0,0", { 1, 2 }, 7 } do
      assert.has_error(function() glow.image.read_png("x.png", { background = bad }) end)
    end
  end)

  it("expands a palette to RGB", function()
    local x = roundtrip(3, 1, 8, 3, { "\2\0\1" }, "\255\0\0\0\255\0\0\0\255")
    assert.same({ 1, 1, 3, 3 }, x:shape())
    assert.same({ 0, 0, 255, 255, 0, 0, 0, 255, 0 }, bytes_back(x))
  end)

  it("scales 16-bit samples to 8 bits and expands 1-bit gray", function()
    local x = roundtrip(3, 1, 16, 0, { "\0\0\255\255\128\128" })
    assert.same({ 0, 255, 128 }, bytes_back(x))
    x = roundtrip(8, 1, 1, 0, { "\xA5" }) -- 10100101
    assert.same({ 255, 0, 255, 0, 0, 255, 0, 255 }, bytes_back(x))
  end)

  it("returns nil and a message for a corrupt or truncated PNG", function()
    local dir = tmpdir()
    write(dir .. "/bad.png", "\137PNG\r\n\26\n garbage that is not a chunk stream")
    local x, err = glow.image.read_png(dir .. "/bad.png")
    assert.is_nil(x)
    assert.matches("bad%.png: corrupt or truncated PNG", err)
    local good = encode_png(4, 4, 8, 0, { "abcd", "efgh", "ijkl", "mnop" })
    write(dir .. "/cut.png", good:sub(1, #good - 30))
    x, err = glow.image.read_png(dir .. "/cut.png")
    assert.is_nil(x)
    assert.matches("cut%.png: corrupt or truncated PNG", err)
    local crc = good:sub(1, 29) .. string.char(good:byte(30) ~ 1) .. good:sub(31) -- flip an IHDR CRC bit
    write(dir .. "/crc.png", crc)
    x, err = glow.image.read_png(dir .. "/crc.png")
    assert.is_nil(x)
    assert.matches("crc%.png: corrupt or truncated PNG %(IHDR: CRC error%)", err)
    write(dir .. "/text.png", "hello")
    x, err = glow.image.read_png(dir .. "/text.png")
    assert.is_nil(x)
    assert.matches("text%.png: not a PNG file", err)
    rmdir(dir)
  end)

  it("refuses a header that claims more pixels than the file can hold, and reads a real large flat image", function()
    local dir = tmpdir()
    -- 10^6 x 10^6 gray pixels in a 70-byte file: deflate packs at most 1032 bytes into one
    write(dir .. "/huge.png", "\137PNG\r\n\26\n" .. chunk("IHDR", string.pack(">I4I4BBBBB", 1000000, 1000000, 8, 0,
      0, 0, 0)) .. chunk("IDAT", zlib_stored("\0abcd")) .. chunk("IEND", ""))
    local x, err = glow.image.read_png(dir .. "/huge.png")
    assert.is_nil(x)
    assert.matches("huge%.png: corrupt or truncated PNG %(its header says 1000000x1000000 pixels, more than its "
      .. "%d+ bytes can hold%)", err)
    -- one flat 3000x3000 picture compresses about as well as deflate can, and still reads
    local flat = glow.Tensor { 1, 3000, 3000, 1 }
    assert(glow.image.save_grid(dir .. "/flat.png", flat, { padding = 0 }))
    local size = #H.read(dir .. "/flat.png")
    assert.is_true(size < 3000 * 3001 / 500, "compressed to " .. size .. " bytes")
    x = assert(glow.image.read_png(dir .. "/flat.png"))
    assert.same({ 1, 3000, 3000, 1 }, x:shape())
    rmdir(dir)
  end)

  it("returns nil and a message for a missing file", function()
    local x, err = glow.image.read_png("/nonexistent/glow.png")
    assert.is_nil(x)
    assert.equal("cannot open /nonexistent/glow.png: No such file or directory", err)
  end)

  it("writes and reads real data through a PNG folder dataset", function()
    local dir = tmpdir()
    local x = H.data({ 1, 6, 6, 3 }, 5)
    assert(glow.image.save_grid(dir .. "/a.png", x))
    local ds = assert(glow.data.images(dir, { size = 6 }))
    local back = ds:batch({ 1 }, { noise = false })
    -- both are the bin centre of floor((x + 0.5) * 256)
    assert.tensor_equal(glow.image.read_png(dir .. "/a.png"), back)
    -- within half a bin of 1/256 (values in [-0.5, 0.5)), and a rounding
    assert.tensor_near(x, back, 0, 1 / 512 + 1e-6)
    assert.equal(read(dir .. "/a.png"):sub(2, 4), "PNG")
    rmdir(dir)
  end)
end)
