--- Shared spec helpers: package paths to the build tree, a registered
--- tensor assertion that reports the largest difference, finite-difference
--- gradient checks and a brute-force Jacobian log-determinant.
local root = debug.getinfo(1, "S").source:match("^@(.*)spec/helper%.lua$") or "./"
if root == "" then root = "./" end
local build = os.getenv("GLOW_BUILD") or (root .. "build")
package.path = root .. "lua/?.lua;" .. root .. "lua/?/init.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath

local say = require "say"
local assert = require "luassert"
local glow = require "glow"

local H = { glow = glow, root = root }

--- Tolerances.
---
--- Tensors are float32: EPS = 2^-23 (about 1.19e-7) is the distance from 1
--- to the next float, and one rounding moves a value by at most EPS/2 of
--- itself. A value that two codes compute in another order (a fused kernel
--- against a naive one, module by module against fused, OpenBLAS's kernel
--- for one CPU against another's, one thread against two) differs by the
--- roundings of the sums behind it: for a sum of n terms, about
--- sqrt(n) * EPS times the size of its terms when the roundings fall at
--- random, n * EPS at worst. So a comparison names the sums a value went
--- through: H.rtol(n1, n2, ...) = 4 * EPS * (sqrt(n1) + sqrt(n2) + ...),
--- one n per chained layer (each adds its own error; the 4 covers two codes
--- rounding independently, with a factor 2 to spare), and 4 * EPS for a
--- value with no sum behind it.
---
--- The error of a sum scales with the size of its terms, not with the sum
--- itself, which cancellation may bring near zero. So tensors are compared
--- norm-wise: the largest difference against rtol times the largest
--- |expected| (Higham's norm-wise relative error), plus an absolute atol
--- (default 0) where the expected values may all be near zero. Scalars are
--- compared element-wise: |actual - expected| <= atol + rtol * |expected|.
--- An absolute tolerance alone (busted's is_near) stays only where the
--- values are known to be O(1); exact equality (tensor_equal) only where
--- the code promises bitwise results (a copy, a deterministic generator,
--- the same kernel on the same data with the same threads), and each such
--- spec says which.
H.EPS = 2 ^ -23

function H.rtol(...)
  local n = select("#", ...)
  if n == 0 then return 4 * H.EPS end
  local s = 0
  for i = 1, n do s = s + math.sqrt((select(i, ...))) end
  return 4 * H.EPS * s
end

--- register assertion `name` with its failure messages
local function register(name, fn, positive, negative)
  say:set("assertion." .. name .. ".positive", positive)
  say:set("assertion." .. name .. ".negative", negative)
  assert:register("assertion", name, fn, "assertion." .. name .. ".positive", "assertion." .. name .. ".negative")
end

--- assert.tensor_near(expected, actual, rtol, atol): the largest |a - e| is at
--- most atol + rtol * max |e|.
local function tensor_near(_, args)
  local e, a, rtol, atol = args[1], args[2], args[3], args[4] or 0
  assert(type(rtol) == "number" and rtol >= 0, "tensor_near: give rtol (see spec/helper.lua)")
  local scale = e:max_abs()
  local allowed = atol + rtol * scale
  local d, at = e:max_abs_diff(a)
  local msg = string.format("%g at element %d, allowed %g = %g + %g x max |expected| %g "
    .. "(expected %.9g, got %.9g)", d, at, allowed, atol, rtol, scale, e:get(at), a:get(at))
  args[1], args[2], args[3], args[4], args.n = msg, nil, nil, nil, 1
  return d <= allowed
end
register("tensor_near", tensor_near, "Tensors differ: largest difference %s",
  "Tensors agree within the tolerance: %s")

--- assert.tensor_near_terms(expected, actual, rtol, mag): element-wise,
--- |a_i - e_i| <= rtol * mag_i, where mag holds the sums of the absolute
--- values of the terms behind each value (the same computation on |inputs|):
--- the component-wise bound, for a sum that cancels to near zero, where
--- nothing else in the tensor gives its scale (a bias gradient with one
--- channel, say).
local function tensor_near_terms(_, args)
  local e, a, rtol, mag = args[1], args[2], args[3], args[4]
  local et, at, mt = e:totable(), a:totable(), mag:totable()
  local worst, where = -1, 1
  for i = 1, #et do
    local r = math.abs(at[i] - et[i]) / (rtol * mt[i])
    if r ~= r then r = math.huge end
    if mt[i] == 0 then r = at[i] == et[i] and 0 or math.huge end
    if r > worst then worst, where = r, i end
  end
  args[1], args[2], args[3], args[4], args.n = string.format("%g x the allowed at element %d: "
    .. "expected %.9g, got %.9g, allowed %g = %g x %g (the sum of the terms' sizes)", worst, where,
    et[where], at[where], rtol * mt[where], rtol, mt[where]), nil, nil, nil, 1
  return worst <= 1
end
register("tensor_near_terms", tensor_near_terms, "Tensors differ: %s",
  "Tensors agree within the tolerance: %s")

--- |t|, element-wise (small tensors: for the component-wise bounds above)
function H.abs(t)
  local v = t:totable()
  for i = 1, #v do v[i] = math.abs(v[i]) end
  return glow.Tensor.from(v, t:shape())
end

--- assert.tensor_equal(expected, actual): bitwise, for the specs where the
--- code promises it (each says why).
local function tensor_equal(_, args)
  local e, a = args[1], args[2]
  local d, at = e:max_abs_diff(a)
  args[1], args[2], args.n = string.format("%g at element %d (expected %.9g, got %.9g)", d, at,
    e:get(at), a:get(at)), nil, 1
  return d == 0
end
register("tensor_equal", tensor_equal, "Tensors are not bitwise equal: largest difference %s",
  "Tensors are bitwise equal: %s")

--- assert.close(expected, actual, rtol, atol [, what]): |a - e| <= atol + rtol * |e|;
--- what, if given, heads the failure message.
local function close(_, args)
  local e, a, rtol, atol, what = args[1], args[2], args[3], args[4] or 0, args[5]
  assert(type(rtol) == "number" and rtol >= 0, "close: give rtol (see spec/helper.lua)")
  local allowed = atol + rtol * math.abs(e)
  local d = math.abs(a - e)
  args[1], args[2], args[3], args[4], args[5], args.n = string.format("%sexpected %.9g, got %.9g: "
    .. "difference %g, allowed %g = %g + %g x |expected|", what and (what .. ": ") or "", e, a, d, allowed,
    atol, rtol), nil, nil, nil, nil, 1
  return d <= allowed
end
register("close", close, "Numbers differ: %s",
  "Numbers agree within the tolerance: %s")

--- The whole content of a file, or nil when it cannot be opened.
function H.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

--- A fresh empty directory under the system temp dir.
function H.tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p '" .. p .. "'"))
  return p
end

--- Remove a directory made by H.tmpdir.
function H.rmdir(p) os.execute("rm -rf '" .. p .. "'") end

--- Write bytes to a file.
function H.write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

--- Make a folder and its parents.
function H.mkdir(p) assert(os.execute("mkdir -p '" .. p .. "'")) end

--- The names in a folder (hidden ones too), sorted.
function H.listdir(dir)
  local out = {}
  local p = assert(io.popen("ls -A '" .. dir .. "'"))
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  table.sort(out)
  return out
end

--- The size of a file in bytes, 0 when it is missing.
function H.size(path)
  local f = io.open(path, "rb")
  if not f then return 0 end
  local n = f:seek("end")
  f:close()
  return n
end

--- {i, i + 1, ..., j}
function H.range(i, j)
  local t = {}
  for k = i, j do t[#t + 1] = k end
  return t
end

--- The uint8 values back from a batch taken with noise = false and n_bits =
--- 8 (or from read_png's bin-centre floats).
function H.bytes_back(x)
  local out = {}
  for i, v in ipairs(x:totable()) do out[i] = math.floor((v + 0.5) * 256) end
  return out
end

--- Run `lua5.4 <args>` from the repository root with the checkout's package
--- and build on the path: exit code, stdout, stderr (kept in tmp).
function H.run_lua(args, tmp)
  local err = tmp .. "/stderr.txt"
  local cmd = string.format("cd %q && LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='%s/?.so;;' lua5.4 %s 2>%q",
    H.root, os.getenv("GLOW_BUILD") or (H.root .. "build"), args, err)
  local p = io.popen(cmd)
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out, H.read(err) or ""
end

--- A folder DIR/train and DIR/test of 8x8 gray PNGs in two classes (a bright
--- column per class over a faint pattern), n_train and n_test images.
function H.class_folder(dir, n_train, n_test)
  for split, n in pairs { train = n_train, test = n_test } do
    for k = 0, 1 do
      local sub = string.format("%s/%s/class%d", dir, split, k)
      H.mkdir(sub)
      for i = 1, n // 2 do
        local px = {}
        for r = 0, 7 do
          for c = 0, 7 do
            local v = (c == 2 + 3 * k) and 220 or 30 + ((r * 3 + c + i) % 7) * 12
            px[#px + 1] = (v + 0.5) / 256 - 0.5
          end
        end
        assert(glow.image.save_grid(string.format("%s/%03d.png", sub, i), glow.Tensor.from(px, { 1, 8, 8, 1 }),
          { cols = 1, padding = 0 }))
      end
    end
  end
end

--- Run lua/bin/glow with args (a string): exit code, stdout, stderr.
function H.glow_cmd(args, tmp) return H.run_lua("lua/bin/glow " .. args, tmp) end

--- Whether a message is one line (a trailing newline allowed).
function H.one_line(s) return s:gsub("\n$", ""):find("\n", 1, true) == nil end

--- The first line of a shell script that runs lua5.4 in the checkout with
--- this build of glow (for the specs that drive processes in the background).
function H.shell_env()
  return string.format("cd %q && export LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='%s/?.so;;'\n", H.root,
    os.getenv("GLOW_BUILD") or (H.root .. "build"))
end

--- Input-like data in [-0.5, 0.5).
function H.data(shape, seed)
  return glow.rand(shape, seed):add_(glow.Tensor(shape):fill_(-0.5))
end

--- Add N(0, std^2) noise to every parameter so that nothing is at its
--- (often degenerate) initial value.
function H.perturb(m, std, seed)
  for i, p in ipairs(m:parameters()) do
    p.value:add_(glow.randn(p.value:shape(), (seed or 1) * 1000 + i, std or 0.1))
  end
end

--- Brute-force log|det J|, flattening, probes, finite differences and the
--- gradient check live in the library (glow.check), for scripts too.
H.jacobian_logdet = glow.check.jacobian_logdet
H.cat = glow.check.cat
H.probe = glow.check.probe
H.fd = glow.check.fd
H.gradcheck = glow.check.gradcheck

--- Assert that a piece's log-determinant ld (a number) equals the
--- brute-force log|det J| of f at x (glow.check.jacobian_logdet; opts pass
--- through to it). Allowed: err + H.rtol(n) |ld|, where err is the brute
--- force's own error estimate (the estimated errors of the Jacobian's
--- entries carried through J^-1 to first order; glow.check) and ld, a
--- float32 sum of n terms (opts.terms, default the number of elements of x),
--- adds its rounding. The brute force must resolve at least opts.resolve,
--- by default 1e-3 + 1e-3 |ld| (the tolerance these specs held before the
--- estimate existed): a coarser one could not tell the errors the specs are
--- after, and fails saying so. Returns brute, err, info.
function H.assert_logdet(f, x, ld, opts)
  opts = opts or {}
  local brute, err, info = glow.check.jacobian_logdet(f, x, opts)
  local what = opts.what and (opts.what .. ": ") or ""
  local resolve = opts.resolve or (1e-3 + 1e-3 * math.abs(ld))
  if err > resolve or err ~= err then
    error(string.format("%sthe brute-force log-determinant %.9g is accurate only to %.2g, above the %.2g the check "
      .. "needs (a better-conditioned piece or a smaller input)", what, brute, err, resolve), 2)
  end
  assert.close(brute, ld, 0, err + H.rtol(opts.terms or x:numel()) * math.abs(ld),
    what .. "log-determinant against the brute-force Jacobian's")
  return brute, err, info
end

--- An op through autograd.grad against central finite differences of the
--- same function on plain tensors: a weighted sum of f's output, so every
--- element of the gradient counts. opts: max (elements probed per input), eps.
function H.check_op(name, f, inputs, opts)
  opts = opts or {}
  local ag = glow.autograd
  local y0 = f(table.unpack(inputs))
  local w = glow.randn(y0:shape(), 7, 1)
  local function scalar(...) return (f(...) * w):sum() end
  local value, grads = ag.grad(scalar, table.unpack(inputs))
  assert.close(scalar(table.unpack(inputs)), value, 1e-5, 1e-5, name .. " value")
  for i, t in ipairs(inputs) do
    if glow.Tensor.is(t) then
      H.gradcheck(function() return scalar(table.unpack(inputs)) end, t, grads[i],
        { what = name .. " input " .. i, eps = opts.eps or 1e-3, max = opts.max })
    end
  end
end

--- The full check of a flow piece: L = <w, y> + a * sum(logdet). Checks dx
--- from backward(y, w, a) against finite differences in x, and every
--- parameter's grad, and that backward rebuilds x.
function H.check_piece(piece, x, opts)
  opts = opts or {}
  local y0 = piece:forward(x)
  local w = glow.randn(y0:shape(), 99, 1)
  local a = 0.7
  local function loss()
    local y, ld = piece:forward(x)
    return y:dot(w) + a * ld:sum()
  end
  piece:zero_grad()
  local xr, dx = piece:backward(y0, w, a)
  -- the input rebuilt by the inverse, relative to the input's size; the
  -- pieces here are tiny (sums of at most a few dozen products), so 1e-4
  -- leaves a wide margin over the rounding and still catches a wrong inverse
  assert.tensor_near(x, xr, opts.inv_tol or 1e-4)
  H.gradcheck(loss, x, dx, { what = (opts.what or "piece") .. " dx", tol = opts.tol, eps = opts.eps })
  for _, p in ipairs(piece:parameters()) do
    H.gradcheck(loss, p.value, p.grad, { what = (opts.what or "piece") .. " " .. p.name,
      tol = opts.tol, eps = opts.eps })
  end
end

--- The fields of a CSV line without quotes (an empty field kept).
function H.split_csv(line)
  local fields = {}
  for f in (line .. ","):gmatch("([^,]*),") do fields[#fields + 1] = f end
  return fields
end

-- A minimal PNG encoder for test files in formats save_grid does not write
-- (palette, gray + alpha, RGBA, 16-bit, 1-bit): stored (uncompressed)
-- deflate blocks, filter 0 on every row. rows: a list of byte strings;
-- chunks: more chunks before IDAT, {tRNS = bytes, ...}.
local crc_table = {}
for n = 0, 255 do
  local c = n
  for _ = 1, 8 do c = (c & 1) ~= 0 and (0xEDB88320 ~ (c >> 1)) or (c >> 1) end
  crc_table[n] = c
end

local function crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do c = crc_table[(c ~ s:byte(i)) & 0xFF] ~ (c >> 8) end
  return c ~ 0xFFFFFFFF
end

local function adler32(s)
  local a, b = 1, 0
  for i = 1, #s do
    a = (a + s:byte(i)) % 65521
    b = (b + a) % 65521
  end
  return (b << 16) | a
end

H.crc32 = crc32

function H.png_chunk(kind, data)
  return string.pack(">I4", #data) .. kind .. data .. string.pack(">I4", crc32(kind .. data))
end

function H.zlib_stored(raw)
  local parts, pos = { "\x78\x01" }, 1
  repeat
    local piece = raw:sub(pos, pos + 65534)
    pos = pos + #piece
    local final = pos > #raw and 1 or 0
    parts[#parts + 1] = string.pack("<BI2I2", final, #piece, (~#piece) & 0xFFFF) .. piece
  until pos > #raw
  parts[#parts + 1] = string.pack(">I4", adler32(raw))
  return table.concat(parts)
end

function H.encode_png(w, h, depth, ctype, rows, palette, chunks)
  local raw = {}
  for i = 1, h do raw[i] = "\0" .. rows[i] end
  local out = { "\137PNG\r\n\26\n", H.png_chunk("IHDR", string.pack(">I4I4BBBBB", w, h, depth, ctype, 0, 0, 0)) }
  if palette then out[#out + 1] = H.png_chunk("PLTE", palette) end
  for kind, data in pairs(chunks or {}) do out[#out + 1] = H.png_chunk(kind, data) end
  out[#out + 1] = H.png_chunk("IDAT", H.zlib_stored(table.concat(raw)))
  out[#out + 1] = H.png_chunk("IEND", "")
  return table.concat(out)
end

return H
