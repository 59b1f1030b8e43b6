--- Shared code of the experiment scripts (conditional, temperature,
--- interpolate, manipulate, ablation): option parsing, a main wrapper that
--- turns any error into one line on stderr and exit code 1, the output
--- folder with its summary, checkpoint loading (with the Polyak average when
--- the checkpoint holds one), training a model, and small helpers that
--- assemble new batches from images of existing ones (for grids and latent
--- arithmetic). A script loads it with
---
---   local C = dofile((arg[0]:match("^(.*)[/\\]") or ".") .. "/common.lua")
---
--- A script that builds a model is also a model file: it ends with
---   return { build = function(o) ... end, options = {...} }
--- (glow.modelfile), and C.script does nothing while the `glow` command
--- loads it that way.
---
--- Every script takes --quick (a tiny model, a few steps, small grids: a
--- smoke test in seconds), --out DIR (default out/<name>), --seed N and
--- --data-dir DIR (where Fashion-MNIST lies). Set GLOW_TRACEBACK=1 to get a
--- stack traceback instead of the one-line message.
local glow = require "glow"
local options = require "glow.cli.options"
local make_dirs = require("glow.cli.common").make_dirs
io.stdout:setvbuf("line")

-- luacheck: ignore 581 (not (a <= b) is also true for NaN, on purpose)
local C = { glow = glow }

--- Raise a message meant for the user (no position prefix).
function C.fail(msg, ...)
  error(select("#", ...) > 0 and string.format(msg, ...) or msg, 0)
end

------------------------------------------------------------------- options
-- An option spec maps a name (as written after "--") to {kind, default,
-- quick = value under --quick, min = lowest number, choices = {...}}.
-- Kinds: "int", "number", "string", "flag", "numbers" (a comma-separated
-- list of numbers) and "strings" (a comma-separated list of words). A
-- default of nil means the option is unset unless given. An option given on
-- the command line wins over its --quick value.

--- The options every script takes.
local COMMON = {
  quick = { "flag" },
  out = { "string" }, -- default out/<name>
  seed = { "int", 0, min = 0 },
  ["data-dir"] = { "string" },
}

--- The options of the scripts that train (conditional, ablation): those of
--- `glow train` (the default model and schedule), and a tiny model under
--- --quick. C.train reads them.
C.TRAIN_OPTIONS = {}
do
  local train_spec = require("glow.cli.train").SPEC
  local quick = { ["max-steps"] = 20, batch = 16, warmup = 2, levels = 2, depth = 2, width = 16, ["eval-limit"] = 64 }
  for _, k in ipairs { "epochs", "max-steps", "batch", "lr", "warmup", "schedule", "decay-frac", "clip", "polyak",
    "levels", "depth", "width", "coupling", "permutation", "eval-limit" } do
    local s = {}
    for key, v in pairs(train_spec[k]) do s[key] = v end
    s.quick = quick[k]
    C.TRAIN_OPTIONS[k] = s
  end
end

--- A spec made of several specs (later ones win).
function C.merge(...)
  local all = {}
  for i = 1, select("#", ...) do
    for k, v in pairs(select(i, ...)) do all[k] = v end
  end
  return all
end

--- Parse argv against spec (plus the common options) for script name with
--- the parser of the `glow` command (glow.cli.options, on lua-argparse):
--- returns a table keyed by option name, with opts.argv the command line
--- as given. --help prints every option; a bad option is one line on
--- stderr and exit code 2.
function C.parse(name, argv, spec)
  spec = C.merge(COMMON, spec)
  local opts = options.parse("examples/" .. name .. ".lua", argv, spec,
    { description = C.DESCRIPTION and C.DESCRIPTION[name] })
  opts.out = opts.out or ("out/" .. name)
  opts.argv = table.concat(argv, " ", 1, #argv)
  return opts
end

------------------------------------------------------------------- outputs
local Output = {}
Output.__index = Output

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
C.shell_quote = shell_quote

--- The output folder of script name (made when the first path in it is
--- asked for): records what is written and the lines for the summary.
function C.output(name, opts)
  return setmetatable({ dir = opts.out, name = name, files = {},
    lines = { string.format("examples/%s.lua %s", name, opts.argv) } }, Output)
end

--- The path of file in the output folder.
function Output:path(file)
  if not self.made then
    local ok, err = make_dirs(self.dir)
    if not ok then C.fail("output folder %s: %s", self.dir, err) end
    self.made = true
  end
  return self.dir .. "/" .. file
end

--- Record a file written by someone else (a checkpoint, a log).
function Output:add(file)
  self.files[#self.files + 1] = self:path(file)
  return self:path(file)
end

--- Print a line and keep it for the summary.
function Output:say(fmt, ...)
  local line = select("#", ...) > 0 and string.format(fmt, ...) or fmt
  print(line)
  self.lines[#self.lines + 1] = line
end

--- Write images x {n, h, w, c} as a PNG grid of cols images per row.
function Output:grid(file, x, cols)
  local ok, err = glow.image.save_grid(self:path(file), x, { cols = cols })
  if not ok then C.fail(err) end
  self:add(file)
end

--- Write a text file.
function Output:text(file, text)
  local path = self:path(file)
  local f, err = io.open(path, "w")
  if not f then C.fail("cannot write %s: %s", path, tostring(err)) end
  f:write(text)
  f:close()
  self:add(file)
end

--- Write summary.txt (the command line and every line said) and print
--- what was written.
function Output:finish()
  self:text("summary.txt", table.concat(self.lines, "\n") .. "\n")
  for _, f in ipairs(self.files) do print("wrote " .. f) end
end

--- Run a script: parse the options, make the output folder, call
--- body(opts, out), write the summary. Any error ends the process with
--- "examples/<name>.lua: message" on stderr and exit code 1.
function C.script(name, spec, body)
  -- loaded as a model file (glow train --model FILE): the file's model
  -- spec is what counts, not its script
  if require("glow.modelfile").loading then return end
  local ok, err = xpcall(function()
    local opts = C.parse(name, arg, spec)
    local out = C.output(name, opts)
    body(opts, out)
    out:finish()
  end, function(e)
    if os.getenv("GLOW_TRACEBACK") then return debug.traceback(tostring(e), 2) end
    return (tostring(e):gsub("%s*\n%s*", "; "))
  end)
  if not ok then
    io.stderr:write("examples/", name, ".lua: ", err, "\n")
    os.exit(1)
  end
end

---------------------------------------------------------------------- data
--- A Fashion-MNIST split ("train" or "test"), from --data-dir when given.
function C.fashion_mnist(opts, split)
  local ds, err = glow.data.fashion_mnist { split = split, dir = opts["data-dir"] }
  if not ds then C.fail(err) end
  return ds
end

--- A folder of PNG files (or of class subfolders) through glow.data.images.
function C.images(dir)
  local ds, err = glow.data.images(dir)
  if not ds then C.fail(err) end
  return ds
end

--- Fail unless the images of ds have the model's shape.
function C.check_shape(ds, model, what)
  local a, b = ds:shape(), model.config.shape
  if a[1] ~= b[1] or a[2] ~= b[2] or a[3] ~= b[3] then
    C.fail("%s holds %dx%dx%d images; the model takes %dx%dx%d", what, a[1], a[2], a[3], b[1], b[2], b[3])
  end
end

-------------------------------------------------------------------- models
local function plain(fn, ...) return fn(...) end

--- averaged(fn, ...) for a model from glow.load: runs fn with the Polyak
--- average in place when the checkpoint holds one (glow.train.run with
--- polyak saves it as the optimizer's state "optim.ema"), else plainly.
local function averaged_of(model)
  local ck = model.checkpoint
  local info = ck and ck.optimizer
  if not (info and ck.tensors["optim.ema"]) then return plain, false end
  local ctor = ({ adam = glow.optim.Adam, adamax = glow.optim.Adamax, sgd = glow.optim.SGD })[info.kind]
  if not ctor then return plain, false end
  local opt = ctor(model, { polyak = 0.999 }) -- the decay is not used: only the saved average
  local ok, err = opt:load_state(ck.tensors, info)
  if not ok then C.fail("%s", err) end
  return function(fn, ...) return opt:with_average(fn, ...) end, true
end

--- Load a checkpoint: model, averaged (see above), whether it averages.
--- need_classes, when given, says what needs a class-conditional model:
--- an unconditional one is then refused.
function C.load(path, need_classes)
  local model, err = glow.load(path)
  if not model then C.fail(err) end
  if not model.initialized then C.fail("%s holds a model that was never initialized or trained", path) end
  if need_classes and not model.config.classes then
    C.fail("%s holds an unconditional model; %s needs a class-conditional one (train it with "
      .. "examples/conditional.lua)", path, need_classes)
  end
  local averaged, is_avg = averaged_of(model)
  return model, averaged, is_avg
end

--- Build a Glow model from the training options (C.TRAIN_OPTIONS) and
--- train it with glow.train.run on Fashion-MNIST. t: train, test (datasets),
--- classes, class_weight, coupling, permutation (default: the options'),
--- checkpoint, log (paths), on_step(stats, state, model, opt), eval (default
--- true), print.
--- Returns model, result (glow.train.run's), averaged(fn, ...).
function C.train(opts, t)
  local model = glow.Glow {
    shape = t.train:shape(), levels = opts.levels, depth = opts.depth, width = opts.width,
    coupling = t.coupling or opts.coupling, permutation = t.permutation or opts.permutation,
    classes = t.classes, class_weight = t.class_weight, seed = opts.seed,
  }
  local steps = opts["max-steps"] > 0 and opts["max-steps"] or nil
  local result = glow.train.run {
    model = model, train = t.train, test = t.test, batch = opts.batch, lr = opts.lr, warmup = opts.warmup,
    epochs = steps and math.max(opts.epochs, math.ceil(steps * opts.batch / t.train:size())) or opts.epochs,
    max_steps = steps, schedule = opts.schedule,
    decay_frac = opts.schedule == "wsd" and opts["decay-frac"] or nil,
    clip = opts.clip > 0 and opts.clip or nil, polyak = opts.polyak > 0 and opts.polyak or nil,
    seed = opts.seed, eval = t.eval, eval_limit = opts["eval-limit"] > 0 and opts["eval-limit"] or nil,
    checkpoint = t.checkpoint, log = t.log,
    on_step = t.on_step, -- (stats, state, model, opt)
    progress = not opts.quick and "auto" or false, print = t.print,
  }
  local opt = result.optimizer
  return model, result, function(fn, ...) return opt:with_average(fn, ...) end
end

--- The model a script works on: --checkpoint, or under --quick without one
--- a tiny model trained here for a few steps and saved to
--- DIR/quick-checkpoint.safetensors. how: need_classes (see C.load; checked
--- only when a checkpoint is given), quick_classes (classes of the quick
--- model). Returns model, averaged(fn, ...), a line that says where it
--- comes from.
function C.model(opts, out, how)
  how = how or {}
  if opts.checkpoint then
    local model, averaged, is_avg = C.load(opts.checkpoint, how.need_classes)
    return model, averaged, string.format("checkpoint %s%s", opts.checkpoint,
      is_avg and " (Polyak-averaged weights)" or "")
  end
  if not opts.quick then
    C.fail("--checkpoint PATH is required (make one with examples/conditional.lua or examples/train.lua), "
      .. "or give --quick to train a tiny model here")
  end
  local tiny = C.parse("quick model", { "--quick", "--seed", tostring(opts.seed) }, C.TRAIN_OPTIONS)
  tiny["data-dir"] = opts["data-dir"]
  local model, _, averaged = C.train(tiny, { train = C.fashion_mnist(opts, "train"), classes = how.quick_classes,
    checkpoint = out:add("quick-checkpoint.safetensors"), eval = false })
  return model, averaged, string.format("a tiny %smodel trained here for %d steps (--quick)",
    how.quick_classes and "class-conditional " or "", tiny["max-steps"])
end

------------------------------------------------------- checking a new model
--- The checks every prototype script runs on a tiny twin of its model
--- (built at a small image size, so a brute-force Jacobian is cheap): the
--- inverse, the log-determinant against a finite-difference Jacobian, and
--- the gradients of the loss against central differences (x and every
--- parameter tensor, a few elements each; glow.check). make(shape) builds an
--- initialized-able model; y (optional) is the conditioning input of a
--- batch of 2. Fails with a message when a check does not hold; says the
--- figures.
function C.verify(out, make, shape, y_of)
  local m = make(shape)
  local x = glow.rand({ 2, shape[1], shape[2], shape[3] }, 5):add_(glow.Tensor { 2, shape[1], shape[2], shape[3] }
    :fill_(-0.5))
  local y = y_of and y_of(x)
  m:initialize(x, y)
  for i, p in ipairs(m:parameters()) do p.value:add_(glow.randn(p.value:shape(), 100 + i, 0.05)) end
  local inv = m:decode((m:encode(x, y)), y):max_abs_diff(x)
  if not (inv <= 1e-4) then C.fail("check: decode(encode(x)) is off by %g", inv) end
  local one = glow.rand({ 1, shape[1], shape[2], shape[3] }, 6):add_(glow.Tensor { 1, shape[1], shape[2], shape[3] }
    :fill_(-0.5))
  local y1 = y_of and y_of(one)
  local _, ld = m:encode(one, y1)
  ld = ld:get(1)
  -- the brute force carries its own error estimate (glow.check); it must
  -- resolve 1e-3 + 1e-3 |log-det|, and the model's figure must lie within
  -- it (plus the float32 rounding of the model's sum)
  local brute, err = glow.check.jacobian_logdet(function(v) return glow.check.cat((m:encode(v, y1))) end, one)
  if not (err <= 1e-3 + 1e-3 * math.abs(ld)) then
    C.fail("check: the brute-force log-determinant %.6g is accurate only to %.2g", brute, err)
  end
  if not (math.abs(ld - brute) <= err + 1e-6 * math.abs(ld)) then
    C.fail("check: log-determinant %.6g, brute-force Jacobian %.6g +- %.2g", ld, brute, err)
  end
  local function loss() return m:loss(x, y).loss end
  m:zero_grad()
  local st = m:loss_and_grad(x, y)
  local worst = glow.check.gradcheck(loss, x, st.dx, { quiet = true, max = 6 })
  local n = 0
  for _, p in ipairs(m:parameters()) do
    worst = math.max(worst, (glow.check.gradcheck(loss, p.value, p.grad, { quiet = true, max = 3 })))
    n = n + 1
  end
  if not (worst <= 1e-2) then C.fail("check: gradients off by %g (relative) from central differences", worst) end
  out:say("checks on a %dx%dx%d twin: decode(encode(x)) max abs error %.2g; log-det %.9g, brute-force "
    .. "Jacobian %.9g +- %.2g; gradients of x and %d parameter tensors within %.2g of finite differences",
    shape[1], shape[2], shape[3], inv, ld, brute, err, n, worst)
end

--- The options C.fit reads (the prototype scripts merge their own in).
C.FIT_OPTIONS = {
  epochs = { "int", 1, min = 1 },
  batch = { "int", 64, quick = 16, min = 1 },
  lr = { "number", 1e-3, min = 0 },
  ["max-steps"] = { "int", 0, quick = 20, min = 0 },
  ["eval-limit"] = { "int", 0, quick = 64, min = 0 },
}

--- Train a model on a dataset for o.epochs with Adam (glow.train.run) on
--- the main job's schedule (a warmup, the rate held, then cooled down over
--- the last 20% of the steps; gradient clipping; a Polyak average of the
--- weights) and report the test bits/dim of the averaged weights; cond(x)
--- (optional) gives the conditioning input of a batch. Returns the test
--- bits/dim and the run's result.
function C.fit(out, model, train, test, o, cond)
  local n_batches = math.ceil(train:size() / o.batch)
  local steps = o["max-steps"] > 0 and o["max-steps"] or nil
  local total_steps = steps or o.epochs * n_batches
  local result = glow.train.run { model = model, train = train, batch = o.batch, lr = o.lr,
    warmup = math.min(200, total_steps // 5), schedule = "wsd", decay_frac = 0.2, polyak = 0.999,
    epochs = o.epochs, max_steps = steps, seed = o.seed, eval = false,
    progress = not o.quick and "lines" or false, print = function(l) out:say("%s", l) end,
    clip = 100, condition = cond and function(x) return cond(x) end or nil }
  local total, count = 0, 0
  result.optimizer:with_average(function()
    for x in test:batches { size = 250, limit = o["eval-limit"] > 0 and o["eval-limit"] or nil, n_bits = 8 } do
      local lp = model:log_prob(x, cond and cond(x) or nil)
      total, count = total + model:bpd_of(lp):sum(), count + lp:numel()
    end
  end)
  return total / count, result
end

------------------------------------------------------- assembling batches
--- A new batch from images of existing batches: image k of the result is
--- sum over items[k]'s terms {t, i, w} of w * (image i of t), where t is a
--- tensor {n, ...} and i is 1-based (w defaults to 1). Every t must have
--- the same per-image shape. The tensors are small (grids, latents of a few
--- images), so the arithmetic runs over flat Lua arrays.
function C.combine(items)
  local cache, shape, d = {}, nil, nil
  local out = {}
  for k, terms in ipairs(items) do
    local base = (k - 1) * (d or 0)
    for _, term in ipairs(terms) do
      local t, i, w = term[1], term[2], term[3] or 1
      local flat = cache[t]
      if not flat then
        flat = t:totable()
        cache[t] = flat
      end
      if not shape then
        shape = t:shape()
        d = #flat // shape[1]
        base = 0
      end
      local off = (i - 1) * d
      for j = 1, d do out[base + j] = (out[base + j] or 0) + w * flat[off + j] end
    end
  end
  shape[1] = #items
  return glow.Tensor.from(out, shape)
end

--- A new batch of the images items[k] = {t, i} (image i of tensor t).
function C.stack(items)
  local terms = {}
  for k, item in ipairs(items) do terms[k] = { item } end
  return C.combine(terms)
end

--- The same for latents (one tensor per level): items[k] is a list of
--- terms {zs, i, w}; returns one tensor per level.
function C.combine_latents(items)
  local levels = {}
  for l = 1, #items[1][1][1] do
    local per = {}
    for k, terms in ipairs(items) do
      per[k] = {}
      for m, term in ipairs(terms) do per[k][m] = { term[1][l], term[2], term[3] } end
    end
    levels[l] = C.combine(per)
  end
  return levels
end

--- A list of n copies of v.
function C.rep(v, n)
  local t = {}
  for i = 1, n do t[i] = v end
  return t
end

return C
