--- glow.modelfile: models written in Lua, for the `glow` command and
--- glow.load. A model file is a Lua file that returns either a builder
---
---   return function(o) return glow.Model(...) end
---
--- or a table
---
---   return {
---     build = function(o) ... end,        -- required: o -> a glow.Model
---     options = { width = {"int", 32, min = 1, help = "..."}, ... },
---     condition = function(x, y) ... end, -- optional: the model's own
---                                         -- conditioning input of a batch
---   }
---
--- o holds shape = {h, w, c} (the data's images), seed, n_bits, classes
--- (with --classes) and the values of the declared options (their defaults,
--- or `--model-option key=value`). options use the spec format of the
--- `glow` command's options (glow.cli.options): kinds "int", "number",
--- "string", "flag"; default; min, max, above, choices. condition(x, labels)
--- returns what the model takes as y (for example a low-resolution copy of
--- x); the command and glow.train.run call it for every batch.
---
--- A checkpoint of such a model records the file's name, its SHA-256 and
--- the options (never the code): loading it needs the file again
--- (glow.load(path, {model = FILE}), `--model FILE`), and a file whose hash
--- differs is refused unless allowed (`--model-changed-ok`). Loading runs
--- the model file, as running a script would; a checkpoint alone runs none.
---
--- While a model file is loaded, M.loading is true: a file that is also a
--- script (every example in examples/ that builds a model) skips its main
--- part then.
local core = require "glow.core"

local M = { loading = false }

--- The file's SHA-256 (hex) or raises.
function M.hash(path)
  local h, err = core.sha256_file(path)
  if not h then error(err, 0) end
  return h
end

--- Load the model file at path: {build, options, condition, path, sha256}.
--- Raises with one line naming the file on any failure.
function M.load(path)
  if type(path) ~= "string" or path == "" then error("model file: a path is required", 0) end
  local sha = M.hash(path)
  local chunk, err = loadfile(path, "t")
  if not chunk then error(string.format("model file %s: %s", path, tostring(err)), 0) end
  local was = M.loading
  M.loading = true
  local ok, ret = pcall(chunk)
  M.loading = was
  if not ok then error(string.format("model file %s: %s", path, tostring(ret)), 0) end
  local spec = type(ret) == "function" and { build = ret } or ret
  if type(spec) ~= "table" or type(spec.build) ~= "function" then
    error(string.format("model file %s must return a function of the options, or a table {build = function, "
      .. "options = {...}, condition = function}; it returned %s", path, type(ret)), 0)
  end
  for k in pairs(spec) do
    if k ~= "build" and k ~= "options" and k ~= "condition" and k ~= "description" then
      error(string.format("model file %s: unknown field '%s' in the table it returns (build, options, condition, "
        .. "description)", path, tostring(k)), 0)
    end
  end
  if spec.options ~= nil and type(spec.options) ~= "table" then
    error(string.format("model file %s: options must be a table of option specs", path), 0)
  end
  if spec.condition ~= nil and type(spec.condition) ~= "function" then
    error(string.format("model file %s: condition must be a function", path), 0)
  end
  local reserved = { shape = true, seed = true, n_bits = true, classes = true }
  for k, s in pairs(spec.options or {}) do
    if reserved[k] then
      error(string.format("model file %s: option '%s' is reserved (o.%s is set by the command)", path, k, k), 0)
    end
    if type(s) ~= "table" or (s[1] ~= "int" and s[1] ~= "number" and s[1] ~= "string" and s[1] ~= "flag") then
      error(string.format("model file %s: option '%s' needs a spec {kind, default, ...} with kind int, number, "
        .. "string or flag", path, tostring(k)), 0)
    end
  end
  return { build = spec.build, options = spec.options or {}, condition = spec.condition, path = path,
    sha256 = sha, description = spec.description }
end

--- The option values for spec from a list of "key=value" strings (nil: all
--- defaults): a table of every declared option, or raises naming the bad one.
function M.options(spec, list, prog)
  local options = require "glow.cli.options"
  local raw, seen = {}, {}
  for _, item in ipairs(list or {}) do
    local k, v = tostring(item):match("^([%w_%-]+)=(.*)$")
    if not k then error(string.format("--model-option needs key=value, got '%s'", tostring(item)), 0) end
    k = k:gsub("%-", "_")
    if not spec.options[k] then
      local names = {}
      for name in pairs(spec.options) do names[#names + 1] = name end
      table.sort(names)
      error(string.format("--model-option %s: the model file %s has no option '%s' (%s)", item, spec.path, k,
        #names > 0 and ("it has: " .. table.concat(names, ", ")) or "it declares none"), 0)
    end
    if seen[k] then error(string.format("--model-option %s is given twice", k), 0) end
    seen[k] = true
    if spec.options[k][1] == "flag" then
      if v ~= "true" and v ~= "false" then
        error(string.format("--model-option %s: a flag takes true or false, got '%s'", k, v), 0)
      end
      raw[k] = v == "true"
    else
      raw[k] = v
    end
  end
  -- the command's own checks and conversions (types, ranges, choices); a
  -- flag given false counts as not given
  local saved = options.usage_error
  local why
  options.usage_error = function(_, fmt, ...) why = string.format(fmt, ...); error(why, 0) end
  local ok, res = pcall(options.finish, prog or "model file", raw, spec.options)
  options.usage_error = saved
  if not ok then error("--model-option: " .. tostring(why or res):gsub("^option %-%-", ""), 0) end
  local out = {}
  for k in pairs(spec.options) do out[k] = res[k] end
  return out
end

--- Build the model of spec for images of shape: o = the option values
--- plus shape, seed, n_bits, classes. Returns a glow.Model carrying
--- model.model_file = {file, sha256, options} (saved with its checkpoints).
function M.build(spec, values, base)
  local o = {}
  for k, v in pairs(values) do o[k] = v end
  for k, v in pairs(base) do o[k] = v end
  o.shape = { base.shape[1], base.shape[2], base.shape[3] }
  local ok, model = pcall(spec.build, o)
  if not ok then error(string.format("model file %s: %s", spec.path, tostring(model)), 0) end
  if type(model) ~= "table" or type(model.parameters) ~= "function" or type(model.log_prob) ~= "function" then
    error(string.format("model file %s: its builder must return a glow.Model, got %s", spec.path, type(model)), 0)
  end
  local s = model.config and model.config.shape
  if type(s) ~= "table" or s[1] ~= o.shape[1] or s[2] ~= o.shape[2] or s[3] ~= o.shape[3] then
    error(string.format("model file %s: its model takes %s images, the data's are %s", spec.path,
      type(s) == "table" and table.concat(s, "x") or "?", table.concat(o.shape, "x")), 0)
  end
  local file = spec.path:match("[^/]*$")
  model.model_file = { file = file, path = spec.path, sha256 = spec.sha256, options = values }
  model.condition = spec.condition
  return model
end

return M
