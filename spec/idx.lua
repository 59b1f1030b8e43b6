--- Small made-up datasets in Fashion-MNIST's IDX format, for specs and the
--- scripts they start (no busted needed). Tests make the data they need.
---
---   local idx = require "spec.idx"
---   idx.write(dir, n, h, w, pixel, label)  -- train-images/-labels-idx?-ubyte
---   local ds = idx.bars(glow, n)           -- n 8x8 gray images, 4 classes
local M = {}

--- Write an uncompressed IDX pair into dir: image i (1-based) has pixel(i, r,
--- c) at row r, column c (0-based; 0..255) and label(i) (0..255).
function M.write(dir, n, h, w, pixel, label)
  local img, lab = { string.pack(">I4I4I4I4", 0x803, n, h, w) }, { string.pack(">I4I4", 0x801, n) }
  for i = 1, n do
    local px = {}
    for r = 0, h - 1 do
      for c = 0, w - 1 do px[#px + 1] = string.char(pixel(i, r, c)) end
    end
    img[#img + 1] = table.concat(px)
    lab[#lab + 1] = string.char(label(i))
  end
  for name, parts in pairs { ["train-images-idx3-ubyte"] = img, ["train-labels-idx1-ubyte"] = lab } do
    local f = assert(io.open(dir .. "/" .. name, "wb"))
    f:write(table.concat(parts))
    f:close()
  end
end

--- n structured 8x8 gray images: a bright bar whose place depends on the
--- label (4 classes) over a faint pattern, loaded as a glow dataset (the
--- files are removed again).
function M.bars(glow, n)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p '" .. dir .. "'"))
  local function label(i) return (i * 7) % 4 end
  M.write(dir, n, 8, 8, function(i, r, c)
    local k = label(i)
    if c == 2 * k or c == 2 * k + 1 then return 200 + (r * 5) % 50 end
    return 30 + ((r + c + i) % 5) * 10
  end, label)
  local ds = assert(glow.data.fashion_mnist { split = "train", dir = dir })
  os.execute("rm -rf '" .. dir .. "'")
  return ds
end

return M
