--- glow.persist: checkpoints of models. model:save and model:load work for
--- every glow.Model (the parameters and buffers under their names);
--- glow.load(path) rebuilds a glow.Glow from the configuration the file
--- holds, and a model written in Lua from its model file (glow.modelfile:
--- the checkpoint records the file's name, SHA-256 and options; the code is
--- never in it). The file layer (safetensors, atomic writes) is glow.checkpoint;
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
  local mf = self.model_file
  if mf then
    meta["glow.model_file"] = json.encode({ file = mf.file, sha256 = mf.sha256, options = mf.options })
  end
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

--- The model of a checkpoint written for a model file: rebuilt by running
--- opts.model (the file, whose hash must match the recorded one unless
--- opts.model_changed_ok) with the recorded options.
local function from_model_file(path, cfg, rec, opts)
  local short = type(rec.sha256) == "string" and rec.sha256:sub(1, 16) or "?"
  if type(rec.file) ~= "string" or type(rec.sha256) ~= "string" or type(rec.options) ~= "table" then
    return nil, path .. ": its model file record is corrupt"
  end
  if not opts.model then
    return nil, string.format("%s holds a model built by the model file %s (sha256 %s...): give that file with "
      .. "--model FILE (glow.load(path, {model = FILE}))", path, rec.file, short)
  end
  local mfile = require "glow.modelfile"
  local ok, spec = pcall(mfile.load, opts.model)
  if not ok then return nil, tostring(spec) end
  if spec.sha256 ~= rec.sha256 and not opts.model_changed_ok then
    return nil, string.format("%s has changed since %s was written (sha256 %s..., the checkpoint records %s "
      .. "for %s): give the same file, or --model-changed-ok to load it anyway", opts.model, path,
      spec.sha256:sub(1, 16), short, rec.file)
  end
  local values = {}
  for k, s in pairs(spec.options) do
    if rec.options[k] ~= nil then values[k] = rec.options[k] else values[k] = s[2] end
  end
  for k in pairs(rec.options) do
    if not spec.options[k] then
      return nil, string.format("%s records the option '%s', which the model file %s no longer declares", path, k,
        opts.model)
    end
  end
  local shape = cfg.shape
  if type(shape) ~= "table" or #shape ~= 3 then return nil, path .. ": its configuration has no shape {h, w, c}" end
  for i = 1, 3 do
    if math.type(shape[i]) ~= "integer" or shape[i] < 1 or shape[i] > 65536 then
      return nil, path .. ": its configuration's shape is corrupt"
    end
  end
  local built, model = pcall(mfile.build, spec, values, { shape = shape, seed = cfg.seed, n_bits = cfg.n_bits,
    classes = cfg.classes })
  if not built then return nil, tostring(model) end
  model.config.memory = cfg.memory or model.config.memory
  model.config.seed = cfg.seed
  return model
end

--- glow.load(path [, {net = fn, average = true, model = FILE,
--- model_changed_ok = true}]) -> model | nil, message.
--- The model carries the checkpoint's optimizer and trainer state in
--- model.checkpoint. average = true loads the Polyak average of the weights
--- (glow.train.run with polyak saves it) instead of the last weights: for
--- evaluation and sampling; such a model cannot resume training.
function persist.load(path, opts)
  opts = util.check_options(opts, { net = true, average = true, model = true, model_changed_ok = true }, "glow.load")
  local json = require "glow.json"
  local ckpt = require "glow.checkpoint"
  local tensors, meta = ckpt.read(path)
  if not tensors then return nil, meta end
  if meta["glow.format"] ~= FORMAT then
    return nil, string.format("%s is not a glow checkpoint (format %s)", path, tostring(meta["glow.format"]))
  end
  local cfg, err = json.decode(meta["glow.config"] or "")
  if type(cfg) ~= "table" then return nil, string.format("%s: bad configuration: %s", path, tostring(err)) end
  local model
  if meta["glow.model_file"] then
    local rec = json.decode(meta["glow.model_file"])
    if type(rec) ~= "table" then return nil, path .. ": its model file record is corrupt" end
    local m, merr = from_model_file(path, cfg, rec, opts)
    if not m then return nil, merr end
    model = m
  elseif opts.model then
    return nil, string.format("%s was not written for a model file (it holds a %s): leave --model out", path,
      (cfg.levels and cfg.depth) and "glow.Glow" or "glow.Model composed by hand")
  end
  -- a glow.Glow's file holds its whole configuration; a glow.Model composed
  -- by hand saves what it was given, which cannot rebuild it
  if not model and (cfg.levels == nil or cfg.depth == nil) then
    return nil, path .. " holds a glow.Model composed by hand, not a glow.Glow: build the same model "
      .. "and call model:load(path)"
  end
  if not model and cfg.custom_net and not opts.net then
    return nil, path .. " was made with a custom coupling network: pass it as glow.load(path, {net = fn})"
  end
  if not model then
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
    local ok, m = pcall(Glow.new, cfg, { placeholders = true })
    if not ok then return nil, string.format("%s: %s", path, tostring(m)) end
    model = m
  end
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
