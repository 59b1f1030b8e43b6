--- glow.Glow: the model of the paper, composed of the library's pieces.
--- Each level is a flow: squeeze, K steps (ActNorm, 1x1 convolution,
--- coupling), then a split whose prior is conditioned on the half that goes
--- on (the last level keeps everything); the top prior is the standard
--- normal, learned (learn_top) or class-conditional (classes, with a
--- classification head). Everything else (encode, decode, log_prob, sample,
--- training, checkpoints) is glow.Model's. To build a variant, copy this
--- file into a script and change the composition (see
--- examples/custom_multiscale.lua and docs/ARCHITECTURE.md).
local util = require "glow.util"
local flow = require "glow.flow"
local prior = require "glow.prior"
local config = require "glow.config"
local Model = require "glow.model"

local Glow = util.class("Glow", Model)
Glow.check_config = config.check
Glow.min_values = config.min_values

--- One level at h x w x c (c already squeezed): the steps, and a split unless it is the last.
local function level(cfg, l, c, last, build)
  local pieces = { { "squeeze", flow.Squeeze() } }
  for k = 1, cfg.depth do
    -- every step's seed follows from (model seed, level, step)
    local seed = cfg.seed * 1000003 + l * 10007 + k * 211
    local net
    if cfg.net then
      local c2 = c - c // 2
      net = cfg.net(c // 2, cfg.coupling == "affine" and 2 * c2 or c2,
        { level = l, step = k, width = cfg.width, seed = seed })
    end
    pieces[#pieces + 1] = { "step" .. k, where = "step " .. k, flow.FlowStep(c, {
      coupling = cfg.coupling, permutation = cfg.permutation, width = cfg.width, net = net, seed = seed,
      placeholder = build.placeholders }) }
  end
  if not last then pieces[#pieces + 1] = { "split", flow.Split(c) } end
  return flow.Flow(pieces)
end

--- glow.Glow{shape = {h, w, c}, levels, depth, width, coupling, permutation,
--- learn_top, classes, class_weight, n_bits, seed [, net] [, memory]}
--- memory: "reversible" rebuilds every step's input by its inverse during
--- backward and recomputes one coupling network at a time; "store" keeps the
--- networks' activations from the forward pass (faster, memory grows with
--- depth); "auto" (default) stores while that takes at most 1 GiB.
--- net, when given, builds every coupling's network: net(cin, cout, {level =
--- l, step = k, width = w, seed = s}) returns a module from glow.nn pieces (or
--- anything with forward/backward/parameters) mapping cin to cout channels.
--- build = {placeholders = true} (glow.load) builds every 1x1 convolution as
--- the identity, for a file to overwrite.
function Glow.new(opts, build)
  if type(opts) ~= "table" then error("glow.Glow: expected an options table", 2) end
  local cfg = config.check(opts)
  local h, w, c = cfg.shape[1], cfg.shape[2], cfg.shape[3]
  local levels = {}
  for l = 1, cfg.levels do
    h, w, c = h // 2, w // 2, c * 4
    levels[l] = level(cfg, l, c, l == cfg.levels, build or {})
    if l < cfg.levels then c = c // 2 end
  end
  local top, head
  if cfg.classes then
    top = prior.ClassConditional({ h, w, c }, cfg.classes, { learn = cfg.learn_top })
    head = prior.ClassHead(c, cfg.classes, { weight = cfg.class_weight / math.log(2) })
  else
    top = cfg.learn_top and prior.Learned({ h, w, c }) or prior.StandardNormal({ h, w, c })
  end
  return Model.new({ levels = levels, prior = top, head = head }, cfg, Glow)
end

--- Bytes the coupling networks' activations take for a batch of n when
--- stored (memory = "store"): per coupling its input half and output, plus
--- two width-sized tensors for the default network (fused, see
--- glow.nn.Sequential: the outputs of its two ReLUs), or four for a custom
--- one (taken as the default's shape run module by module: each conv output
--- and each fused ActNorm+ReLU output).
function Glow:activation_bytes(n)
  local cfg = self.config
  local total, h, w, c = 0, cfg.shape[1], cfg.shape[2], cfg.shape[3]
  local hidden = (cfg.net and 4 or 2) * cfg.width
  for _ = 1, cfg.levels do
    h, w, c = h // 2, w // 2, c * 4
    total = total + 4 * n * h * w * (hidden + 2 * c) * cfg.depth
    c = c // 2
  end
  return total
end

return Glow
