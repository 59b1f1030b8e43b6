--- glow.image: PNG files through libpng, JPEG through libjpeg (csrc/image.c).
---
---   glow.image.save_grid(path, x, {cols = 8, padding = 1, scale = 1, format, quality = 95}) -> true | nil, message
---   glow.image.format_of(path) -> "png" | "jpeg" | nil
---   glow.image.read_png(path, {background = "white"}) -> x {1, h, w, c} | nil, message
---
--- x holds images {n, h, w, c} (c = 1 gray, 3 RGB) in the preprocessed range
--- [-0.5, 0.5]; a pixel is floor((x + 0.5) * 256) clipped to [0, 255], the
--- inverse of the 8-bit preprocessing. The grid has min(cols, n) images per
--- row, padding black pixels between them. scale K enlarges each image K
--- times, nearest neighbour (each pixel a KxK block; the padding stays as
--- given), so small images can be looked at. format = "png" or "jpeg"
--- (default: the path's, format_of, else "png"); a JPEG is written at
--- quality (1..100, 95 by default; 100 keeps full chroma). The file is
--- written to a temporary file beside path and renamed into place. read_png gives the 8-bit values v
--- as (v + 0.5) / 256 - 0.5 (the bin centre), so read_png and save_grid
--- round-trip exactly. Transparent pixels (an alpha channel or a tRNS
--- chunk) are composited over background, as glow.data.images does (white
--- by default; see glow.data.background).
local core = require "glow.core"
local util = require "glow.util"

local M = {}

local GRID_OPTS = { cols = true, padding = true, scale = true, format = true, quality = true }

local int_opt = util.int_opt

--- The image format a file name asks for: "png" for .png, "jpeg" for .jpg
--- or .jpeg (any case), else nil.
function M.format_of(path)
  local ext = tostring(path):match("%.(%w+)$")
  ext = ext and ext:lower()
  if ext == "png" then return "png" end
  if ext == "jpg" or ext == "jpeg" then return "jpeg" end
end

function M.save_grid(path, x, opts)
  if type(path) ~= "string" then error("save_grid: path must be a string, got " .. type(path), 0) end
  util.check_image(x, nil, nil, nil, "save_grid: x")
  opts = util.check_options(opts, GRID_OPTS, "save_grid")
  local cols = int_opt(opts.cols, 8, "save_grid: cols", 1)
  local padding = int_opt(opts.padding, 1, "save_grid: padding", 0)
  local k = int_opt(opts.scale, 1, "save_grid: scale", 1, 64)
  if k > 1 then
    -- nearest neighbour: each pixel repeated k times down and across (one copy in C)
    local s = x:shape()
    x = x:reshape { s[1], s[2], 1, s[3], 1, s[4] }:expand { s[1], s[2], k, s[3], k, s[4] }
      :reshape { s[1], s[2] * k, s[3] * k, s[4] }
  end
  local format = opts.format or M.format_of(path) or "png"
  if format ~= "png" and format ~= "jpeg" then
    error("save_grid: format must be 'png' or 'jpeg', got " .. tostring(format), 0)
  end
  local quality = int_opt(opts.quality, 95, "save_grid: quality", 1, 100)
  return core.save_grid(path, x, cols, padding, format == "jpeg" and quality or nil)
end

local READ_OPTS = { background = true }

function M.read_png(path, opts)
  if type(path) ~= "string" then error("read_png: path must be a string, got " .. type(path), 0) end
  opts = util.check_options(opts, READ_OPTS, "read_png")
  local bg = require("glow.data").background(opts.background, "read_png: background")
  return core.read_png(path, bg[1] << 16 | bg[2] << 8 | bg[3])
end

return M
