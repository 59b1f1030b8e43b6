--- glow.persist: checkpoints of models. model:save and model:load work for
--- every glow.Model (the parameters and buffers under their names);
--- glow.load(path) rebuilds a glow.Glow from the configuration the file
--- holds. The file layer (safetensors, atomic writes) is glow.checkpoint;
--- the format is docs/FORMAT.md.
local core = require "glow.core"
local util = require "glow.util"

local persist = { methods = {} }
local Model = persist.methods

local FORMAT = "glow-checkpoint-1"

local function config_for_file(cfg)
  local c = {}
  for k, v in pairs(cfg) do if k ~= "net" then c[k] = v end end
  c.custom_net = cfg.net ~= nil
  return c
end

--- save(path [, {optimizer = opt, trainer = table}]) -> true | nil, message.
--- A safetensors file: every parameter under its name, the fixed buffers
--- (LU permutation and signs, shuffles) as "buffer.<name>", the optimizer's
--- moments as "optim.*"; the metadata holds the configuration, whether the
--- model is initialized, and the optimizer's and trainer's state as JSON.
--- Written to a temporary file and renamed into place.
function Model:save(path, extra)
  extra = util.check_options(extra, { optimizer = true, trainer = true }, "save")
  local json = require "glow.json"
  local ckpt = require "glow.checkpoint"
  local tensors = {}
  for _, p in ipairs(self:parameters()) do tensors[#tensors + 1] = { name = p.name, value = p.value } end
  for _, b in ipairs(util.buffers(self)) do
    local v = b.owner[b.field]
    if not util.is_tensor(v) then v = core.from(v, { #v }) end
    tensors[#tensors + 1] = { name = "buffer." .. b.name, value = v }
  end
  local meta = {
    ["glow.format"] = FORMAT,
    ["glow.config"] = json.encode(config_for_file(self.config)),
    ["glow.initialized"] = tostring(self.initialized),
  }
  if extra.optimizer then
    local ot, oinfo = extra.optimizer:state()
    for _, t in ipairs(ot) do tensors[#tensors + 1] = t end
    meta["glow.optimizer"] = json.encode(oinfo)
  end
  if extra.trainer then meta["glow.trainer"] = json.encode(extra.trainer) end
  return ckpt.write(path, tensors, meta)
end

--- Copy a checkpoint's tensors into this model, refusing another architecture.
function Model:load_tensors(tensors, path)
  local where = "checkpoint " .. tostring(path)
  local function fits(name, want)
    local t = tensors[name]
    if not t then return nil, string.format("%s holds another architecture: no tensor %s", where, name) end
    local a, b = util.shapestr(t:shape()), util.shapestr(want)
    if a ~= b then
      return nil, string.format("%s holds another architecture: %s has shape %s, this model has %s",
        where, name, a, b)
    end
    return t
  end
  local plan = {}
  for _, p in ipairs(self:parameters()) do
    local t, err = fits(p.name, p.value:shape())
    if not t then return nil, err end
    plan[#plan + 1] = { p.value, t }
  end
  local bufs = util.buffers(self)
  for _, b in ipairs(bufs) do
    local v = b.owner[b.field]
    local t, err = fits("buffer." .. b.name, util.is_tensor(v) and v:shape() or { #v })
    if not t then return nil, err end
  end
  for _, pair in ipairs(plan) do pair[1]:copy_(pair[2]) end
  for _, b in ipairs(bufs) do
    local t, v = tensors["buffer." .. b.name], b.owner[b.field]
    if util.is_tensor(v) then
      v:copy_(t)
    else
      local arr = {}
      for i, x in ipairs(t:totable()) do arr[i] = math.tointeger(x) or x end
      if b.owner.set_perm and b.field == "perm" then b.owner:set_perm(arr) else b.owner[b.field] = arr end
    end
  end
  return true
end

--- glow.load(path [, {net = fn, average = true}]) -> model | nil, message.
--- The model carries the checkpoint's optimizer and trainer state in
--- model.checkpoint. average = true loads the Polyak average of the weights
--- (glow.train.run with polyak saves it) instead of the last weights: for
--- evaluation and sampling; such a model cannot resume training.
function persist.load(path, opts)
  opts = util.check_options(opts, { net = true, average = true }, "glow.load")
  local json = require "glow.json"
  local ckpt = require "glow.checkpoint"
  local tensors, meta = ckpt.read(path)
  if not tensors then return nil, meta end
  if meta["glow.format"] ~= FORMAT then
    return nil, string.format("%s is not a glow checkpoint (format %s)", path, tostring(meta["glow.format"]))
  end
  local cfg, err = json.decode(meta["glow.config"] or "")
  if type(cfg) ~= "table" then return nil, string.format("%s: bad configuration: %s", path, tostring(err)) end
  -- a glow.Glow's file holds its whole configuration; a glow.Model composed
  -- by hand saves what it was given, which cannot rebuild it
  if cfg.levels == nil or cfg.depth == nil then
    return nil, path .. " holds a glow.Model composed by hand, not a glow.Glow: build the same model "
      .. "and call model:load(path)"
  end
  if cfg.custom_net and not opts.net then
    return nil, path .. " was made with a custom coupling network: pass it as glow.load(path, {net = fn})"
  end
  cfg.custom_net = nil
  cfg.net = opts.net
  local Glow = require "glow.glow"
  local checked, full = pcall(Glow.check_config, cfg)
  if not checked then return nil, string.format("%s: %s", path, tostring(full)) end
  if not opts.net then
    local need, have = Glow.min_values(full), 0
    for _, t in pairs(tensors) do have = have + t:numel() end
    if need > have then
      return nil, string.format("%s: its configuration needs at least %.0f parameter values, but the file "
        .. "holds %d: the configuration is corrupt or does not belong to these tensors", path, need, have)
    end
  end
  -- the file overwrites every parameter: skip the permutations' O(c^3) set-up
  local ok, model = pcall(Glow.new, cfg, { placeholders = true })
  if not ok then return nil, string.format("%s: %s", path, tostring(model)) end
  local done, lerr = model:load_tensors(tensors, path)
  if not done then return nil, lerr end
  if opts.average then
    -- the average is one flat vector in the order of model:parameters()
    local ema, params, total = tensors["optim.ema"], model:parameters(), 0
    if not ema then
      return nil, path .. " holds no Polyak average (train with polyak > 0, or load it without average)"
    end
    for _, p in ipairs(params) do total = total + p.value:numel() end
    if ema:numel() ~= total then
      return nil, string.format("%s: its Polyak average holds %d values, the model %d", path, ema:numel(), total)
    end
    local off = 0
    for _, p in ipairs(params) do
      p.value:copy_(core.view_range(ema, off, p.value:shape()))
      off = off + p.value:numel()
    end
    model.averaged = true
  end
  model:take_state(tensors, meta)
  return model
end

--- After the tensors are in: whether the model is initialized, and the
--- optimizer's and trainer's state in model.checkpoint (for glow.train.run
--- with resume = true, which frees the tensors once it has them).
function Model:take_state(tensors, meta)
  local json = require "glow.json"
  self.initialized = meta["glow.initialized"] == "true"
  if self.initialized then
    self:apply(function(m) if m.check_init then m.initialized = true end end)
  end
  self.checkpoint = {
    tensors = tensors,
    optimizer = meta["glow.optimizer"] and json.decode(meta["glow.optimizer"]),
    trainer = meta["glow.trainer"] and json.decode(meta["glow.trainer"]),
  }
end

--- model:load(path) -> true | nil, message: parameters from a checkpoint of
--- the same architecture, for any glow.Model (one composed by hand too).
--- Like glow.load it keeps the optimizer's and trainer's state in
--- model.checkpoint, so glow.train.run{model = m, resume = true} goes on.
function Model:load(path)
  local tensors, meta = require("glow.checkpoint").read(path)
  if not tensors then return nil, meta end
  local ok, err = self:load_tensors(tensors, path)
  if not ok then return nil, err end
  self:take_state(tensors, meta)
  return true
end

return persist
