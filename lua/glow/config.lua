--- glow.config: glow.Glow's options, their defaults and checks, and the
--- parameter count a configuration implies (glow.load checks a file's
--- tensors against it before it builds anything).
local util = require "glow.util"

local config = {}

local OPTIONS = {
  shape = true, levels = true, depth = true, width = true, coupling = true, permutation = true,
  learn_top = true, classes = true, class_weight = true, n_bits = true, seed = true, net = true,
  memory = true,
}

local DEFAULTS = {
  levels = 3, depth = 32, width = 512, coupling = "affine", permutation = "invconv_lu",
  learn_top = true, class_weight = 0.01, n_bits = 8, seed = 0, memory = "auto",
}

local function positive_int(v, name)
  if math.type(v) ~= "integer" or v < 1 then
    error(string.format("glow.Glow: option %s must be a positive integer, got %s", name, tostring(v)), 0)
  end
end

function config.check(opts)
  util.check_options(opts, OPTIONS, "glow.Glow")
  local cfg = {}
  for k, v in pairs(DEFAULTS) do cfg[k] = v end
  for k, v in pairs(opts) do cfg[k] = v end
  local s = cfg.shape
  if type(s) ~= "table" or #s ~= 3 then
    error("glow.Glow: option shape must be {h, w, c}, got " .. tostring(s), 0)
  end
  s = { s[1], s[2], s[3] } -- a copy: later changes to the caller's table do not reach the model
  cfg.shape = s
  for i = 1, 3 do positive_int(s[i], "shape[" .. i .. "]") end
  for _, k in ipairs { "levels", "depth", "width", "n_bits" } do positive_int(cfg[k], k) end
  if cfg.n_bits > 8 then error("glow.Glow: option n_bits must be 1..8, got " .. cfg.n_bits, 0) end
  if cfg.coupling ~= "affine" and cfg.coupling ~= "additive" then
    error("glow.Glow: option coupling must be \"affine\" or \"additive\", got "
      .. tostring(cfg.coupling), 0)
  end
  local perms = { invconv_lu = true, invconv = true, shuffle = true, reverse = true }
  if not perms[cfg.permutation] then
    error("glow.Glow: option permutation must be one of invconv_lu, invconv, shuffle, reverse; got "
      .. tostring(cfg.permutation), 0)
  end
  if type(cfg.learn_top) ~= "boolean" then error("glow.Glow: option learn_top must be a boolean", 0) end
  if cfg.classes ~= nil then
    if math.type(cfg.classes) ~= "integer" or cfg.classes < 2 then
      error("glow.Glow: option classes must be an integer >= 2, got " .. tostring(cfg.classes), 0)
    end
  end
  if type(cfg.class_weight) ~= "number" or cfg.class_weight < 0 then
    error("glow.Glow: option class_weight must be a number >= 0", 0)
  end
  if math.type(cfg.seed) ~= "integer" then error("glow.Glow: option seed must be an integer", 0) end
  if cfg.memory ~= "auto" and cfg.memory ~= "store" and cfg.memory ~= "reversible" then
    error("glow.Glow: option memory must be \"auto\", \"store\" or \"reversible\", got "
      .. tostring(cfg.memory), 0)
  end
  if cfg.net ~= nil and type(cfg.net) ~= "function" then
    error("glow.Glow: option net must be a function(cin, cout, info) returning a network", 0)
  end
  local f = 2 ^ cfg.levels
  if s[1] % f ~= 0 or s[2] % f ~= 0 then
    error(string.format("glow.Glow: image size %dx%d cannot be squeezed %d times (levels = %d): "
      .. "height and width must be divisible by %d", s[1], s[2], cfg.levels, cfg.levels, f), 0)
  end
  return cfg
end

--- A lower bound on the parameter values of a model with this (checked)
--- configuration and the default coupling networks, counted without building
--- it: glow.load compares it with the values a file holds before it
--- allocates anything, so a small file cannot make it build a huge model.
function config.min_values(cfg)
  -- floats throughout: no integer wraps, whatever the configuration says
  local h, w, c = cfg.shape[1] + 0.0, cfg.shape[2] + 0.0, cfg.shape[3] + 0.0
  local width, n = cfg.width + 0.0, 0.0
  for l = 1, cfg.levels do
    h, w, c = h // 2, w // 2, c * 4
    local c1 = c // 2
    local c2 = c - c1
    local out = cfg.coupling == "affine" and 2 * c2 or c2
    -- ActNorm; the network: conv3x3, ActNorm, conv1x1, ActNorm, ZeroConv3x3
    local step = 2.0 * c + 9.0 * c1 * width + 2 * width + width * width + 2 * width + 9.0 * width * out + 2 * out
    if cfg.permutation == "invconv" then step = step + 1.0 * c * c end
    if cfg.permutation == "invconv_lu" then step = step + 2.0 * c * c + c end -- L, U, log_s
    n = n + cfg.depth * step
    if l < cfg.levels then
      n = n + 9.0 * c1 * 2 * c2 -- the split prior's ZeroConv3x3
      c = c1
    end
  end
  if cfg.learn_top then n = n + 2.0 * h * w * c end
  if cfg.classes then n = n + 3.0 * cfg.classes * c end
  return n
end

return config
