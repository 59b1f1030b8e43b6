local H = require "spec.helper"
local glow = H.glow
local json = require "glow.json"
local checkpoint = glow.checkpoint

-- fresh directories (H.tmpdir), removed by cleanup()
local tmpdir = H.tmpdir

local function cleanup(dir)
  if dir and dir:match("^/tmp/") then os.execute("rm -rf '" .. dir .. "'") end
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function spit(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

-- the names in dir, sorted
local function listing(dir)
  local p = assert(io.popen("ls -A '" .. dir .. "'"))
  local names = {}
  for line in p:lines() do names[#names + 1] = line end
  p:close()
  table.sort(names)
  return names
end

-- a safetensors file by hand: length prefix, header text, data bytes
local function frame(header, data)
  return string.pack("<I8", #header) .. header .. (data or "")
end

local function f32(list)
  return string.pack("<" .. string.rep("f", #list), table.unpack(list))
end

local function seq(n, start)
  local t = {}
  for i = 1, n do t[i] = (start or 0) + i end
  return t
end

describe("glow.checkpoint.write", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() cleanup(dir) end)

  it("writes the safetensors layout: header length, JSON header, little-endian float32 data", function()
    local path = dir .. "/m.safetensors"
    local a = glow.Tensor.from({ 1, 2, 3, 4, 5, 6 }, { 2, 3 })
    local b = glow.Tensor.from({ -1.5 }, { 1 })
    assert.is_true(checkpoint.write(path, { { name = "a", value = a }, { name = "b", value = b } },
      { epoch = "3", note = "x" }))
    local bytes = slurp(path)
    local n = string.unpack("<I8", bytes)
    assert.equal(0, (8 + n) % 8) -- the data starts 8-byte aligned
    local header = bytes:sub(9, 8 + n)
    local text = header:gsub(" +$", "")
    assert.equal('{"__metadata__":{"epoch":"3","note":"x"},'
      .. '"a":{"data_offsets":[0,24],"dtype":"F32","shape":[2,3]},'
      .. '"b":{"data_offsets":[24,28],"dtype":"F32","shape":[1]}}', text)
    assert.same({
      __metadata__ = { epoch = "3", note = "x" },
      a = { dtype = "F32", shape = { 2, 3 }, data_offsets = { 0, 24 } },
      b = { dtype = "F32", shape = { 1 }, data_offsets = { 24, 28 } },
    }, json.decode(header))
    assert.equal(f32 { 1, 2, 3, 4, 5, 6, -1.5 }, bytes:sub(9 + n))
  end)

  it("writes no __metadata__ entry when there is no metadata", function()
    local path = dir .. "/m.safetensors"
    assert.is_true(checkpoint.write(path, { { name = "w", value = glow.Tensor { 4 } } }))
    local bytes = slurp(path)
    local h = json.decode(bytes:sub(9, 8 + string.unpack("<I8", bytes)))
    assert.is_nil(h.__metadata__)
    assert.same({ 4 }, h.w.shape)
  end)

  it("leaves no temporary file behind after a success", function()
    local path = dir .. "/m.safetensors"
    assert.is_true(checkpoint.write(path, { { name = "w", value = glow.randn({ 3, 3 }, 1) } }))
    assert.is_true(checkpoint.write(path, { { name = "w", value = glow.randn({ 5 }, 2) } }))
    assert.same({ "m.safetensors" }, listing(dir))
  end)

  it("names its temporary file after the target, in the same directory", function()
    local tmp = checkpoint.temp_path(dir .. "/m.safetensors")
    assert.truthy(tmp:find(dir .. "/m.safetensors.tmp-", 1, true) == 1)
  end)

  it("leaves an existing file unchanged when the temporary file cannot be created", function()
    local path = dir .. "/m.safetensors"
    assert.is_true(checkpoint.write(path, { { name = "w", value = glow.randn({ 8 }, 1) } }))
    local before = slurp(path)
    local tmp = checkpoint.temp_path(path)
    assert(os.execute("mkdir '" .. tmp .. "'")) -- a directory where the temp file would go
    local ok, err = checkpoint.write(path, { { name = "w", value = glow.randn({ 8 }, 2) } })
    assert.is_nil(ok)
    assert.equal(path .. ": cannot create the temporary file " .. tmp .. ": Is a directory", err)
    assert.equal(before, slurp(path))
    os.execute("rmdir '" .. tmp .. "'")
    assert.same({ "m.safetensors" }, listing(dir))
  end)

  it("leaves an existing file unchanged and removes the temporary file when the disk fills", function()
    local path = dir .. "/m.safetensors"
    assert.is_true(checkpoint.write(path, { { name = "w", value = glow.randn({ 8 }, 1) } }))
    local before = slurp(path)
    local build = os.getenv("GLOW_BUILD") or (H.root .. "build")
    -- a child whose files may not grow past 512 bytes (ulimit -f 1, SIGXFSZ
    -- ignored: write fails with EFBIG, as on a full disk)
    for _, n in ipairs { 1000, 1000000 } do -- fails on the flush, then in fwrite itself
      spit(dir .. "/child.lua", string.format([[
local glow = require "glow"
local ok, err = glow.checkpoint.write(%q, { { name = "w", value = glow.randn({ %d }, 2) } })
io.stdout:write(tostring(ok), "|", tostring(err))
]], path, n))
      local p = io.popen(string.format("cd %q && trap '' XFSZ && ulimit -f 1 && LUA_PATH='lua/?.lua;lua/?/init.lua;;' "
        .. "LUA_CPATH='%s/?.so;;' lua5.4 %q", H.root, build, dir .. "/child.lua"))
      local out = p:read("a")
      p:close()
      local tmp = out:match("temporary file (%S+):")
      assert.is_string(tmp, out)
      assert.equal("nil|" .. path .. ": cannot write the temporary file " .. tmp .. ": File too large", out)
      assert.equal(before, slurp(path))
      os.remove(dir .. "/child.lua")
      assert.same({ "m.safetensors" }, listing(dir))
    end
  end)

  it("never writes through a symlink planted at its temporary name or at the target", function()
    local path = dir .. "/m.safetensors"
    local victim = dir .. "/victim"
    spit(victim, "precious")
    assert(os.execute("ln -s '" .. victim .. "' '" .. checkpoint.temp_path(path) .. "'"))
    assert.is_true(checkpoint.write(path, { { name = "w", value = glow.randn({ 8 }, 1) } }))
    assert.equal("precious", slurp(victim))
    assert.same({ "m.safetensors", "victim" }, listing(dir))
    -- a symlink at the target is replaced by the file, its target untouched
    os.remove(path)
    assert(os.execute("ln -s '" .. victim .. "' '" .. path .. "'"))
    assert.is_true(checkpoint.write(path, { { name = "w", value = glow.randn({ 8 }, 1) } }))
    assert.equal("precious", slurp(victim))
    assert.is_nil(require("lfs").symlinkattributes(path, "target"))
    assert.equal("file", require("lfs").symlinkattributes(path, "mode"))
  end)

  it("leaves the previous file loadable when the writing process is killed (SIGKILL) mid-write", function()
    local path = dir .. "/m.safetensors"
    local build = os.getenv("GLOW_BUILD") or (H.root .. "build")
    -- the child writes a small checkpoint, then a 128 MiB one, again and again
    local child = string.format([[
local glow = require "glow"
assert(glow.checkpoint.write(%q, { { name = "w", value = glow.Tensor { 4 }:fill_(1) } }))
local big = glow.Tensor { 32 * 1024 * 1024 }:fill_(2)
while true do glow.checkpoint.write(%q, { { name = "w", value = big } }) end
]], path, path)
    spit(dir .. "/child.lua", child)
    assert(os.execute(string.format("cd %q && LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='%s/?.so;;' "
      .. "lua5.4 %q >/dev/null 2>&1 & echo $! > %q", H.root, build, dir .. "/child.lua", dir .. "/pid")))
    local pid = math.tointeger(tonumber(slurp(dir .. "/pid"):match("%d+")))
    local tmp = path .. ".tmp-" .. pid
    local t0 = glow.core.now()
    -- kill it as soon as the first big write has started: once the small
    -- checkpoint is in place (its own temporary file has the same name)
    local started = false
    while glow.core.now() - t0 < 30 do
      local done = io.open(path, "rb")
      if done then done:close() end
      local f = done and io.open(tmp, "rb")
      if f then
        local size = f:seek("end")
        f:close()
        if size > 0 then
          started = true
          break
        end
      end
      os.execute("sleep 0.01")
    end
    os.execute("kill -9 " .. pid .. " 2>/dev/null")
    assert.is_true(started, "the child never started its big write")
    os.execute("sleep 0.2")
    local tensors, err = checkpoint.read(path)
    assert.is_not_nil(tensors, err)
    assert.same({ 1, 1, 1, 1 }, tensors.w:totable())
  end)

  it("returns nil and a message for a directory that does not exist", function()
    local path = dir .. "/missing/m.safetensors"
    local ok, err = checkpoint.write(path, { { name = "w", value = glow.Tensor { 2 } } })
    assert.is_nil(ok)
    assert.equal(path .. ": cannot create the temporary file " .. checkpoint.temp_path(path)
      .. ": No such file or directory", err)
    assert.same({}, listing(dir))
  end)

  it("returns nil, removes its temporary file and keeps a directory that sits at the path", function()
    local path = dir .. "/taken"
    assert(os.execute("mkdir '" .. path .. "'"))
    local ok, err = checkpoint.write(path, { { name = "w", value = glow.Tensor { 2 } } })
    assert.is_nil(ok)
    assert.equal(path .. ": cannot rename the temporary file " .. checkpoint.temp_path(path)
      .. " over it: Is a directory", err)
    assert.same({ "taken" }, listing(dir))
  end)

  it("raises on misuse: names missing, empty, repeated or reserved, values not tensors", function()
    local path = dir .. "/m.safetensors"
    local t = glow.Tensor { 2 }
    assert.has_error(function() checkpoint.write(path, { { name = "a", value = t }, { name = "a", value = t } }) end,
      'checkpoint.write: tensor name "a" appears twice (tensors[1] and tensors[2])')
    assert.has_error(function() checkpoint.write(path, { { name = "", value = t } }) end,
      'checkpoint.write: tensors[1].name must be a non-empty string, got ""')
    assert.has_error(function() checkpoint.write(path, { { value = t } }) end,
      "checkpoint.write: tensors[1].name must be a non-empty string, got nil")
    assert.has_error(function() checkpoint.write(path, { { name = "__metadata__", value = t } }) end,
      'checkpoint.write: tensors[1].name "__metadata__" is reserved for the metadata')
    assert.has_error(function() checkpoint.write(path, { { name = "a", value = { 1, 2 } } }) end,
      'checkpoint.write: tensors[1].value ("a") must be a glow.Tensor, got table')
    assert.has_error(function() checkpoint.write(path, { t }) end,
      "checkpoint.write: tensors[1] must be a table {name = ..., value = tensor}, got userdata")
    assert.has_error(function() checkpoint.write(path, t) end,
      "checkpoint.write: tensors must be an array of {name = ..., value = tensor}, got userdata")
    assert.has_error(function() checkpoint.write(nil, {}) end,
      "checkpoint.write: path must be a non-empty string, got nil")
    assert.same({}, listing(dir))
  end)

  it("raises on metadata values that are not strings", function()
    local path = dir .. "/m.safetensors"
    local t = { { name = "a", value = glow.Tensor { 2 } } }
    assert.has_error(function() checkpoint.write(path, t, { epoch = 3 }) end,
      'checkpoint.write: metadata["epoch"] must be a string, got number')
    assert.has_error(function() checkpoint.write(path, t, { [1] = "x" }) end,
      "checkpoint.write: metadata keys must be strings, got the number key 1")
    assert.has_error(function() checkpoint.write(path, t, "x") end,
      "checkpoint.write: metadata must be a table of string -> string, got string")
    assert.same({}, listing(dir))
  end)
end)

describe("glow.checkpoint.read", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() cleanup(dir) end)

  it("round-trips tensors of several shapes, a large one included, and the metadata", function()
    local path = dir .. "/m.safetensors"
    local list = {
      { name = "bias", value = glow.randn({ 7 }, 1) },
      { name = "level1.step2.weight", value = glow.randn({ 3, 3, 4, 8 }, 2) },
      { name = "big", value = glow.randn({ 1000000 }, 3) },
      { name = "ünïcode ✓", value = glow.randn({ 2, 1 }, 4) },
    }
    local meta = { config = '{"levels":2}', step = "1200", empty = "" }
    assert.is_true(checkpoint.write(path, list, meta))
    local tensors, metadata = checkpoint.read(path)
    assert.same(meta, metadata)
    local n = 0
    for _ in pairs(tensors) do n = n + 1 end
    assert.equal(#list, n)
    for _, e in ipairs(list) do
      local t = tensors[e.name]
      assert.same(e.value:shape(), t:shape())
      -- the file holds the float32 bytes: bitwise
      assert.tensor_equal(e.value, t)
    end
    assert.equal(8 + string.unpack("<I8", slurp(path)) + 4 * (7 + 288 + 1000000 + 2), #slurp(path))
  end)

  it("returns an empty metadata table when the file has none, and reads a file of no tensors", function()
    local path = dir .. "/m.safetensors"
    assert.is_true(checkpoint.write(path, {}))
    local tensors, metadata = checkpoint.read(path)
    assert.same({}, tensors)
    assert.same({}, metadata)
  end)

  it("reads files from other writers: padded header, tensors in any order, a scalar", function()
    local path = dir .. "/other.safetensors"
    local header = '{"b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},\n'
      .. ' "a": {"dtype": "F32", "shape": [], "data_offsets": [8, 12]},\n'
      .. ' "__metadata__": {"format": "pt"}}' .. string.rep(" ", 5)
    spit(path, frame(header, f32 { 1.5, -2, 42 }))
    local tensors, metadata = checkpoint.read(path)
    assert.same({ format = "pt" }, metadata)
    assert.same({ 1.5, -2 }, tensors.b:totable())
    assert.same({ 1 }, tensors.a:shape()) -- a scalar becomes a 1-element vector
    assert.equal(42, tensors.a:get(1))
  end)

  it("returns nil and a message for a missing file or a directory", function()
    local path = dir .. "/nope.safetensors"
    local t, err = checkpoint.read(path)
    assert.is_nil(t)
    assert.equal(path .. ": cannot open: No such file or directory", err)
    t, err = checkpoint.read(dir)
    assert.is_nil(t)
    assert.equal(dir .. ": not a regular file", err)
  end)

  describe("on a corrupt file", function()
    local good, hlen
    before_each(function()
      local path = dir .. "/good.safetensors"
      assert.is_true(checkpoint.write(path, {
        { name = "a", value = glow.Tensor.from(seq(6), { 2, 3 }) },
        { name = "b", value = glow.Tensor.from(seq(4, 10), { 4 }) },
      }, { epoch = "1" }))
      good = slurp(path)
      hlen = string.unpack("<I8", good)
    end)

    -- read bytes as a file: nil, and a message naming the file that holds fragment
    local function rejects(bytes, fragment)
      local path = dir .. "/bad.safetensors"
      spit(path, bytes)
      local t, err = checkpoint.read(path)
      assert.is_nil(t, "expected the read to fail with: " .. fragment)
      assert.is_string(err)
      assert.equal(path .. ": ", err:sub(1, #path + 2))
      assert.truthy(err:find(fragment, 1, true), "message: " .. err .. "\nexpected: " .. fragment)
      return err
    end

    -- a hand-made file whose data buffer holds n floats
    local function file(header, nfloats)
      return frame(header, f32(seq(nfloats)))
    end

    it("rejects a file shorter than the 8-byte header length", function()
      for _, cut in ipairs { 0, 1, 7 } do
        local err = rejects(good:sub(1, cut), "is too short for a safetensors file")
        assert.truthy(err:find("file of " .. cut .. " bytes", 1, true))
      end
    end)

    it("rejects a file truncated anywhere in the header or the data", function()
      for _, cut in ipairs { 8, 9, 8 + hlen // 2, 8 + hlen - 1 } do
        rejects(good:sub(1, cut), "runs past the end of the file")
      end
      for _, cut in ipairs { 8 + hlen, 8 + hlen + 1, 8 + hlen + 24, #good - 4, #good - 1 } do
        rejects(good:sub(1, cut), "lie outside the " .. (cut - 8 - hlen) .. "-byte data buffer "
          .. "(missing data: file truncated?)")
      end
    end)

    it("rejects a header size bigger than the file, or absurd", function()
      rejects(string.pack("<I8", #good) .. good:sub(9), "header length " .. #good
        .. " runs past the end of the file (" .. #good .. " bytes)")
      rejects(string.pack("<I8", 200 * 1024 * 1024) .. good:sub(9), "is absurd (over 100 MB)")
      rejects(string.pack("<I8", -1) .. good:sub(9), "is absurd (over 100 MB)")
    end)

    it("rejects trailing data after the last tensor", function()
      rejects(good .. "garbage!", "trailing data: the tensors cover 40 bytes but the data buffer holds 48")
    end)

    it("rejects a header that is not JSON or not an object", function()
      local flipped = good:sub(1, 8) .. "x" .. good:sub(10)
      rejects(flipped, "header is not valid JSON: json: expected a value at byte 1")
      rejects(file("[1, 2]", 0), "header is not a JSON object")
      rejects(file('"a"', 0), "header is not a JSON object")
      rejects(file("", 0), "header is not valid JSON: json: unexpected end of input")
      rejects(file('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}', 1),
        "header is not valid JSON")
    end)

    it("never raises and names the file whatever length or header byte is flipped", function()
      local path = dir .. "/flip.safetensors"
      for i = 1, 8 + hlen do
        for _, mask in ipairs { 0x01, 0x20, 0x80 } do
          local c = string.char(good:byte(i) ~ mask)
          spit(path, good:sub(1, i - 1) .. c .. good:sub(i + 1))
          local t, err = checkpoint.read(path)
          if t == nil then
            assert.equal(path .. ": ", err:sub(1, #path + 2))
          end
        end
      end
    end)

    it("rejects an entry without dtype, shape or data_offsets, or not an object", function()
      rejects(file('{"a": {"shape": [1], "data_offsets": [0, 4]}}', 1), 'tensor "a": entry has no "dtype"')
      rejects(file('{"a": {"dtype": "F32", "data_offsets": [0, 4]}}', 1), 'tensor "a": entry has no "shape"')
      rejects(file('{"a": {"dtype": "F32", "shape": [1]}}', 1), 'tensor "a": entry has no "data_offsets"')
      rejects(file('{"a": [1]}', 1), 'tensor "a": entry is not a JSON object')
      rejects(file('{"a": {"dtype": "F32", "shape": 1, "data_offsets": [0, 4]}}', 1),
        'tensor "a": shape is not an array')
      rejects(file('{"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}', 1),
        'tensor "a": shape [1.5]: dimension 1 is not a non-negative integer')
      rejects(file('{"a": {"dtype": "F32", "shape": [2, 0], "data_offsets": [0, 0]}}', 0),
        'tensor "a": shape [2, 0] holds no values')
      rejects(file('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}', 1),
        'tensor "a": data_offsets must be [begin, end], two non-negative integers')
    end)

    it("rejects a dtype other than F32", function()
      rejects(file('{"a": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}}', 2),
        'tensor "a": dtype F64 is not supported (glow reads F32 only)')
      rejects(good:gsub('"F32"', '"F16"', 1), "dtype F16 is not supported")
    end)

    it("rejects offsets out of order, overlapping, with gaps, outside the buffer or of the wrong size", function()
      local function two(a, b)
        return '{"a": {"dtype": "F32", "shape": [2], "data_offsets": ' .. a .. '}, '
          .. '"b": {"dtype": "F32", "shape": [2], "data_offsets": ' .. b .. '}}'
      end
      rejects(file(two("[8, 0]", "[8, 16]"), 4), 'tensor "a": data_offsets [8, 0] are out of order')
      rejects(file(two("[0, 8]", "[4, 12]"), 3), 'tensors "a" [0, 8] and "b" [4, 12] overlap')
      rejects(file(two("[0, 8]", "[0, 8]"), 2), 'tensors "a" [0, 8] and "b" [0, 8] overlap')
      rejects(file(two("[0, 8]", "[12, 20]"), 5), 'bytes [8, 12] of the data buffer belong to no tensor')
      rejects(file(two("[4, 12]", "[12, 20]"), 5), "bytes [0, 4] of the data buffer belong to no tensor")
      rejects(file(two("[0, 8]", "[8, 16]"), 3), 'tensor "b": data_offsets [8, 16] lie outside the 12-byte')
      rejects(file(two("[0, 8]", "[8, 12]"), 3),
        'tensor "b": data_offsets [8, 12] span 4 bytes but shape [2] of F32 needs 8')
      rejects(file('{"a": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 16]}}', 4),
        "span 16 bytes but shape [4611686018427387904, 4] of F32 needs more than 2^63")
      rejects(good:gsub("%[0,24%]", "[0,20]", 1), 'tensor "a": data_offsets [0, 20] span 20 bytes')
      rejects(file('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, -4]}}', 1),
        "data_offsets must be [begin, end]")
    end)

    it("rejects metadata that is not an object of strings", function()
      local t = '"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}'
      rejects(file('{"__metadata__": {"epoch": 3}, ' .. t .. "}", 1),
        '__metadata__["epoch"] is not a string (number)')
      rejects(file('{"__metadata__": {"epoch": null}, ' .. t .. "}", 1),
        '__metadata__["epoch"] is not a string (null)')
      rejects(file('{"__metadata__": ["x"], ' .. t .. "}", 1), "__metadata__ is not a JSON object")
    end)
  end)
end)

describe("glow.checkpoint", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() cleanup(dir) end)

  -- the descriptors this process holds, as a child inherits them
  local function open_fds()
    local p = io.popen("ls /proc/self/fd 2>/dev/null | wc -l")
    local n = tonumber(p:read("a"))
    p:close()
    return n
  end

  it("closes every file it opens, on success and on every failure", function()
    if not open_fds() or open_fds() == 0 then return end -- no /proc
    local path = dir .. "/m.safetensors"
    local before = open_fds()
    for _ = 1, 3 do
      assert.is_true(checkpoint.write(path, { { name = "a", value = glow.randn({ 10 }, 1) } }))
      assert.truthy(checkpoint.read(path))
      local good = slurp(path)
      for _, bytes in ipairs { good:sub(1, 4), good:sub(1, 20), good:sub(1, #good - 1), good .. "x",
        string.pack("<I8", 1 << 40) .. good:sub(9) } do
        spit(dir .. "/bad", bytes)
        assert.is_nil(checkpoint.read(dir .. "/bad"))
      end
      assert.is_nil(checkpoint.read(dir))
      assert.is_nil(checkpoint.write(dir .. "/no/such", {}))
      assert.is_nil(checkpoint.write(dir, {}))
    end
    assert.equal(before, open_fds())
  end)
end)

describe("glow.core.checkpoint_read_data", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() cleanup(dir) end)

  it("checks every range against the file before reading, whatever the caller says", function()
    local path = dir .. "/m.safetensors"
    assert.is_true(checkpoint.write(path, { { name = "a", value = glow.Tensor.from(seq(4), { 4 }) } }))
    local hlen = string.unpack("<I8", slurp(path))
    local size = #slurp(path)
    local core = glow.core
    local t = core.checkpoint_read_data(path, hlen, size, { { 2 } }, { 8 })
    assert.same({ 3, 4 }, t[1]:totable())
    local v, err = core.checkpoint_read_data(path, hlen, size, { { 2 } }, { 12 })
    assert.is_nil(v)
    assert.equal(path .. ": tensor 1: bytes [12, 12 + 8) lie outside the 16-byte data buffer", err)
    v, err = core.checkpoint_read_data(path, hlen, size + 1, { { 1 } }, { 0 })
    assert.is_nil(v)
    assert.truthy(err:find("file changed while reading", 1, true))
    assert.has_error(function() core.checkpoint_read_data(path, hlen, size, { { 1000 } }, { 0 }) end,
      "checkpoint_read_data: shapes[1] holds more values than the file")
  end)
end)
