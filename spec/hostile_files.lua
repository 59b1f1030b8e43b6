--- Image files an attacker would hand a folder loader, built in a few
--- milliseconds however many pixels they claim (for spec/folder_spec.lua
--- and bench/hostile_images.sh; no busted needed):
---
---   F.jpeg_flat(h, w, c, opts) -> bytes: a valid JPEG of a flat gray image
---     (every DCT coefficient 0: 128 everywhere), written by hand. Its
---     Huffman tables give coefficient 0 the code "0", so the entropy-coded
---     data is zero bytes, 5 bits a block (baseline) or 1 bit a block
---     (progressive DC scan): a 16384x16384 RGB file is 3.9 MiB baseline,
---     0.8 MiB progressive. c = 1 (gray) or 3 (YCbCr, 4:2:0).
---     opts.progressive: SOF2 with one DC scan; opts.ac_scans = n adds n
---     identical AC scans of the first component (a valid, redundant
---     progression: libjpeg decodes each, a pass over the whole image, and
---     they cost a few bytes each, as end-of-band runs of 32767 blocks).
---   F.png_claiming(png, w, h, pad) -> bytes: a PNG's IHDR made to claim
---     w x h pixels (its CRC recomputed), pad zero bytes appended after IEND
---     so that the file is large enough to hold them compressed.
---   F.png_chunk(kind, data), F.write(path, bytes), F.read(path).
local F = {}

-- the CRC and chunk writer of the PNG encoder in spec/helper.lua
local H = require "spec.helper"
F.crc32 = H.crc32
F.png_chunk = H.png_chunk

function F.write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

function F.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function F.png_claiming(png, w, h, pad)
  assert(png:sub(13, 16) == "IHDR", "not a PNG with IHDR first")
  local data = string.pack(">I4I4", w, h) .. png:sub(25, 29)
  return png:sub(1, 8) .. F.png_chunk("IHDR", data) .. png:sub(34) .. string.rep("\0", pad or 0)
end

local function marker(code, payload)
  return "\xFF" .. string.char(code) .. string.pack(">I2", #payload + 2) .. payload
end

-- bits written most significant first, a 0xFF byte followed by a stuffed 0x00
local function bit_writer()
  local out, acc, n = {}, 0, 0
  local w = {}
  function w.put(v, len)
    for i = len - 1, 0, -1 do
      acc = (acc << 1) | ((v >> i) & 1)
      n = n + 1
      if n == 8 then
        out[#out + 1] = string.char(acc)
        if acc == 0xFF then out[#out + 1] = "\0" end
        acc, n = 0, 0
      end
    end
  end
  function w.finish() -- pad with ones
    if n > 0 then w.put((1 << (8 - n)) - 1, 8 - n) end
    return table.concat(out)
  end
  return w
end

-- the blocks of a component of sampling (hs, vs) out of (hmax, vmax)
local function comp_blocks(h, w, hs, vs, hmax, vmax)
  local cw, ch = -(-w * hs // hmax), -(-h * vs // vmax)
  return -(-cw // 8), -(-ch // 8)
end

function F.jpeg_flat(h, w, c, opts)
  opts = opts or {}
  assert(c == 1 or c == 3)
  local comps = c == 1 and { { 1, 1, 1 } } or { { 1, 2, 2 }, { 2, 1, 1 }, { 3, 1, 1 } }
  local hmax = c == 1 and 1 or 2
  local parts = { "\xFF\xD8", marker(0xDB, "\0" .. string.rep("\1", 64)) }
  local sof = { string.pack(">BI2I2B", 8, h, w, c) }
  for _, k in ipairs(comps) do sof[#sof + 1] = string.pack("BBB", k[1], k[2] << 4 | k[3], 0) end
  parts[#parts + 1] = marker(opts.progressive and 0xC2 or 0xC0, table.concat(sof))
  -- DC table 0: one symbol (category 0) of code "0"; AC table 0: the 15
  -- symbols 0x00, 0x10, ..., 0xE0 (end of band / EOBRUN of 2^r) with 4-bit
  -- codes 0..14: "0000" is end of band
  local counts = { 1 }
  for i = 2, 16 do counts[i] = 0 end
  local dc = "\x00" .. string.char(table.unpack(counts)) .. "\0"
  counts[1], counts[4] = 0, 15
  local syms = {}
  for r = 0, 14 do syms[#syms + 1] = string.char(r << 4) end
  local ac = "\x10" .. string.char(table.unpack(counts)) .. table.concat(syms)
  parts[#parts + 1] = marker(0xC4, dc .. ac)
  local mcus = -(-w // (8 * hmax)) * -(-h // (8 * hmax))
  local per_mcu = c == 1 and 1 or 6
  local sos = { string.char(c) }
  for _, k in ipairs(comps) do sos[#sos + 1] = string.pack("BB", k[1], 0x00) end
  if not opts.progressive then
    parts[#parts + 1] = marker(0xDA, table.concat(sos) .. "\0\63\0")
    if c == 1 then mcus = -(-w // 8) * -(-h // 8) end
    parts[#parts + 1] = string.rep("\0", -(-(mcus * per_mcu * 5) // 8))
  else
    parts[#parts + 1] = marker(0xDA, table.concat(sos) .. "\0\0\0")
    if c == 1 then mcus = -(-w // 8) * -(-h // 8) end
    parts[#parts + 1] = string.rep("\0", -(-(mcus * per_mcu) // 8))
    if (opts.ac_scans or 0) > 0 then
      local bw, bh = comp_blocks(h, w, comps[1][2], comps[1][3], hmax, hmax)
      local bits = bit_writer()
      local left = bw * bh
      while left > 0 do -- end-of-band runs: symbol r << 4, then r bits of run - 2^r
        local run = math.min(left, 32767)
        local r = 0
        while (2 << r) <= run do r = r + 1 end
        bits.put(r, 4)
        bits.put(run - (1 << r), r)
        left = left - run
      end
      local scan = marker(0xDA, string.pack("BBB", 1, comps[1][1], 0x00) .. "\1\63\0") .. bits.finish()
      parts[#parts + 1] = string.rep(scan, opts.ac_scans)
    end
  end
  parts[#parts + 1] = "\xFF\xD9"
  return table.concat(parts)
end

return F
