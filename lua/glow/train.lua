--- The trainer: data-dependent initialization, the epoch loop with a
--- progress line, a CSV log, a full test evaluation each epoch, checkpoints
--- every N steps and at the end, and exact resumption from a checkpoint.
---
---   local result = glow.train.run{model = model, train = ds, test = ds2, epochs = 5}
---
--- Determinism: the order of the training images depends on (seed, epoch)
--- and each image's dequantization noise on (seed, epoch, image index), so
--- the position in the data is the whole random state; a resumed run follows
--- the same loss curve as one left alone (same thread count).
local core = require "glow.core"
local util = require "glow.util"
local optim = require "glow.optim"
local dist = require "glow.distributed"

local train = {}

local OPTIONS = {
  model = true, train = true, test = true, epochs = true, batch = true, optimizer = true, lr = true,
  warmup = true, schedule = true, step_size = true, gamma = true, min_lr_frac = true, clip = true,
  decay_frac = true,
  weight_decay = true, polyak = true, betas = true, momentum = true, seed = true, init_size = true,
  log = true, checkpoint = true, checkpoint_every = true, eval = true, eval_batch = true,
  eval_limit = true, progress = true, max_steps = true, resume = true, max_skipped = true,
  restore_after = true, lr_drop = true, snapshot_every = true,
  on_epoch = true, on_step = true, on_checkpoint = true, print = true, condition = true, max_bpd = true,
  checkpoint_seconds = true, record = true,
}

--- A bits/dim figure for a progress or summary line: "%.4f", or "n/a" when
--- there is none (an epoch whose every step was skipped); never "nan". A
--- figure that does not exist (no test set) is left out of a line, not shown.
function train.figure(v)
  return v and string.format("%.4f", v) or "n/a"
end

local function fmt_time(s)
  if s ~= s or s == math.huge then return "?" end
  s = math.floor(s + 0.5)
  if s >= 3600 then return string.format("%dh%02dm", s // 3600, (s % 3600) // 60) end
  if s >= 60 then return string.format("%dm%02ds", s // 60, s % 60) end
  return s .. "s"
end

--- A progress line: redrawn in place on a terminal, plain lines otherwise.
local Progress = {}
Progress.__index = Progress

local function progress_new(mode, printer)
  -- under mpirun every rank's stdout claims to be a terminal: redraw in
  -- place only in a single process
  local tty = mode == true or (mode == "auto" and core.isatty(1) and dist.size() == 1)
  return setmetatable({ tty = tty, on = mode ~= false, last = -math.huge, print = printer }, Progress)
end

--- End a line left open by an in-place redraw.
function Progress:close()
  if self.tty and self.open then io.stdout:write("\n") end
  self.open = false
end

function Progress:show(line, final)
  if not self.on then return end
  if self.tty then
    io.stdout:write("\r\27[K", line, final and "\n" or "")
    io.stdout:flush()
    self.open = not final
  else
    local now = core.now()
    if final or now - self.last >= 10 then
      self.print(line)
      self.last = now
    end
  end
end

--- On resume: drop the log's lines after the checkpoint's step (steps that
--- ran after it and are about to run again), so each step is logged once.
--- The log is rewritten to a temporary file and renamed over the old one.
local function trim_log(path, step)
  local f = io.open(path, "r")
  if not f then return end
  local keep, dropped = {}, 0
  for line in f:lines() do
    local s = math.tointeger(tonumber(line:match("^(%d+),")))
    if s and s > step then dropped = dropped + 1 else keep[#keep + 1] = line end
  end
  f:close()
  if dropped == 0 then return end
  local ok, werr = core.write_file(path, table.concat(keep, "\n") .. (#keep > 0 and "\n" or ""))
  if not ok then error("train: cannot rewrite the log: " .. tostring(werr), 0) end
end


local function open_log(path, append)
  if not path then return nil end
  local f, err = io.open(path, append and "a" or "w")
  if not f then error("train: cannot write the log " .. path .. ": " .. tostring(err), 0) end
  -- a resumed run appends to its log; a new or empty file gets the header
  if append and f:seek("end") == 0 then append = false end
  -- fully buffered and flushed after each line by the caller: readable while
  -- the run goes on, and a failed write shows in flush's result (a
  -- line-buffered stream loses the error of its implicit flush)
  f:setvbuf("full")
  if not append then
    f:write("step,epoch,batch,bpd,loss,lr,grad_norm,images_per_s,wall_s,test_bpd,skipped\n")
  end
  return f
end

--- nil when a checkpoint's trainer state is usable, else what is wrong: a
--- file from elsewhere must not steer the loop with strings or negative counts.
local function trainer_problem(tr)
  for _, f in ipairs { { "epoch", 1 }, { "batch", 1 }, { "step", 0 } } do
    local v = tr[f[1]]
    if math.type(v) ~= "integer" or v < f[2] then
      return string.format("%s must be an integer >= %d, got %s", f[1], f[2], tostring(v))
    end
  end
  if math.type(tr.seed) ~= "integer" then return "seed must be an integer, got " .. tostring(tr.seed) end
  if tr.wall ~= nil and (type(tr.wall) ~= "number" or tr.wall < 0) then
    return "wall must be a number >= 0, got " .. tostring(tr.wall)
  end
  if tr.settings ~= nil and type(tr.settings) ~= "table" then return "settings must be an object" end
  if tr.stage_start ~= nil and (math.type(tr.stage_start) ~= "integer" or tr.stage_start < 0
      or tr.stage_start > tr.step) then
    return "stage_start must be an integer in 0..step, got " .. tostring(tr.stage_start)
  end
end

local DECAYS = { cosine = true, linear = true, wsd = true }

--- How a resumed run's epoch count relates to the checkpoint's: nil when
--- it continues the same schedule, "extend" when a finished run with a
--- decaying schedule gets more epochs (a new stage), or raises.
local function epochs_change(run, tr, saved)
  local want, had = run.cfg.epochs, saved.epochs
  local done = tr.epoch - 1 -- complete epochs in the checkpoint
  if want == done and (had == nil or had == want) then return "finished" end
  if want <= done then
    error(string.format("glow.train.run: the checkpoint has already trained %d epoch%s; ask for more "
      .. "(epochs > %d) to extend it", done, done == 1 and "" or "s", done), 0)
  end
  if had == nil or want == had or not DECAYS[run.settings.schedule] then return nil end
  if want < had or done < had then
    error(string.format("glow.train.run: the checkpoint stopped in epoch %d of %d, with the %s learning rate "
      .. "decaying over %d epochs; resume with epochs = %d to finish that run, then extend it with more epochs",
      tr.epoch, had, run.settings.schedule, had, had), 0)
  end
  return "extend"
end

local function make_optimizer(o, model, total_steps, schedule_start)
  local kind = o.optimizer or "adam"
  local opts = { lr = o.lr or 1e-3, warmup = o.warmup, schedule = o.schedule, step_size = o.step_size,
    gamma = o.gamma, min_lr_frac = o.min_lr_frac, decay_frac = o.decay_frac, clip = o.clip,
    weight_decay = o.weight_decay,
    polyak = o.polyak, total_steps = total_steps, schedule_start = schedule_start }
  if kind == "adam" or kind == "adamax" then opts.betas = o.betas
  elseif kind == "sgd" then opts.momentum = o.momentum
  else error("train: unknown optimizer '" .. tostring(kind) .. "' (adam, adamax, sgd)", 0) end
  local ctor = ({ adam = optim.Adam, adamax = optim.Adamax, sgd = optim.SGD })[kind]
  return ctor(model, opts)
end

--- Evaluate test bits/dim (with the Polyak average when there is one).
local function evaluate(o, model, opt)
  return opt:with_average(function()
    return model:bits_per_dim(o.test, { batch = o.eval_batch or 256, seed = 0, limit = o.eval_limit,
      distributed = true, condition = o.condition })
  end)
end

--- The settings of a run, every one checked before any work (no file
--- touched, no step taken): the fault settings, the batch against the rank
--- count, and the sizes the loop runs by.
local function check_options(o)
  util.check_options(o, OPTIONS, "glow.train.run")
  if o.progress ~= nil and o.progress ~= true and o.progress ~= false and o.progress ~= "auto"
    and o.progress ~= "lines" then
    error("glow.train.run: progress must be \"auto\", \"lines\", true or false, got " .. tostring(o.progress), 0)
  end
  local c = {
    restore_after = util.int_opt(o.restore_after, 5, "glow.train.run: restore_after", 0),
    snapshot_every = util.int_opt(o.snapshot_every, 200, "glow.train.run: snapshot_every", 1),
    lr_drop = o.lr_drop or 0.5,
  }
  if type(c.lr_drop) ~= "number" or not (c.lr_drop > 0 and c.lr_drop <= 1) then
    error("glow.train.run: lr_drop must be a number in (0, 1], got " .. tostring(c.lr_drop), 0)
  end
  if not o.model or not o.train then error("glow.train.run: model and train are required", 0) end
  -- {rank, size} under glow.distributed with more than one rank
  c.ranks = dist.size() > 1 and { dist.rank(), dist.size() } or nil
  local what = "glow.train.run: "
  c.batch = util.int_opt(o.batch, 64, what .. "batch", 1)
  c.eval_batch = util.int_opt(o.eval_batch, 256, what .. "eval_batch", 1)
  c.epochs = util.int_opt(o.epochs, 1, what .. "epochs", 1)
  c.seed = util.int_opt(o.seed, 0, what .. "seed", 0)
  c.init_size = util.int_opt(o.init_size, 256, what .. "init_size", 1)
  c.max_skipped = util.int_opt(o.max_skipped, 20, what .. "max_skipped", 0)
  for _, k in ipairs { "max_steps", "checkpoint_every", "eval_limit" } do
    util.int_opt(o[k], nil, what .. k, 1)
  end
  -- luacheck: ignore 581 (not (x > 0) is also true for NaN)
  if o.checkpoint_seconds ~= nil and (type(o.checkpoint_seconds) ~= "number" or not (o.checkpoint_seconds > 0)) then
    error(what .. "checkpoint_seconds must be a number > 0, got " .. tostring(o.checkpoint_seconds), 0)
  end
  if o.record ~= nil and type(o.record) ~= "table" then
    error(what .. "record must be a table, got " .. type(o.record), 0)
  end
  c.max_bpd = o.max_bpd == nil and 100 or o.max_bpd
  if c.max_bpd ~= false and (type(c.max_bpd) ~= "number" or not (c.max_bpd > 0)) then -- luacheck: ignore 581
    error(what .. "max_bpd must be a number > 0 or false, got " .. tostring(o.max_bpd), 0)
  end
  for _, k in ipairs { "on_step", "on_epoch", "on_checkpoint", "print", "condition" } do
    if o[k] ~= nil and type(o[k]) ~= "function" then
      error(string.format("%s%s must be a function, got %s", what, k, type(o[k])), 0)
    end
  end
  if c.ranks and (c.batch < c.ranks[2] or c.eval_batch < c.ranks[2]) then
    error(string.format("glow.train.run: batch %d and eval_batch %d must not be smaller than the %d ranks",
      c.batch, c.eval_batch, c.ranks[2]), 0)
  end
  c.n_bits = o.model.config.n_bits
  c.per_epoch = math.ceil(o.train:size() / c.batch)
  c.total = o.max_steps or c.epochs * c.per_epoch
  return c
end

--- The run's shared state: the options (o) and checked settings (cfg), the
--- model, data and optimizer, the trainer state saved with each checkpoint,
--- and rank 0's say. Later phases add log, prog, result and the clock.
local function setup(o, cfg)
  -- under glow.distributed only rank 0 prints, logs and writes checkpoints
  local root = dist.is_root()
  local run = { o = o, cfg = cfg, model = o.model, ds = o.train, root = root,
    say = root and (o.print or print) or function() end,
    -- the data order's seed: the option's, or the checkpoint's on resume
    seed = cfg.seed, run_steps = 0, consecutive_skips = 0, stopped = false }
  run.opt = make_optimizer(o, run.model, cfg.total)
  -- everything that shapes the run is saved with the position, so a resumed
  -- run continues the same one; resuming with different settings is refused
  run.settings = { batch = cfg.batch, seed = cfg.seed, epochs = cfg.epochs, optimizer = o.optimizer or "adam",
    lr = o.lr or 1e-3, warmup = o.warmup or 0, schedule = type(o.schedule) == "string" and o.schedule or nil,
    clip = o.clip or 0, polyak = o.polyak or 0, weight_decay = o.weight_decay or 0,
    decay_frac = o.decay_frac }
  -- the training set's augmentation (flips, random crops) is part of the
  -- run: recorded only when on, so runs without it compare as before
  local aug = o.train.augmentation and o.train:augmentation() or {}
  run.settings.flip = aug.flip or nil
  run.settings.crop = aug.crop == "random" and "random" or nil
  -- a random crop's windows depend on the stored size it crops from
  run.settings.crop_from = run.settings.crop and table.concat(o.train:stored_shape(), "x") or nil
  run.state = { epoch = 1, batch = 1, step = 0, seed = cfg.seed, wall = 0, settings = run.settings,
    record = o.record }
  -- what a class-conditional model's labels mean: the training set's class
  -- names (a resumed run keeps its checkpoint's)
  if run.model.config.classes and type(o.train.class_names) == "table" then
    run.state.class_names = table.move(o.train.class_names, 1, #o.train.class_names, 1, {})
  end
  return run
end

--- A failure on rank 0 alone (its checkpoint or log) must end every rank:
--- the others would wait in their next collective call forever.
local function fail(run, msg)
  if run.cfg.ranks then dist.abort(msg) end
  error(msg, 0)
end

--- Rank 0's files: an unwritable checkpoint path is refused before any
--- work, and the CSV log is opened (appended to on resume).
local function open_outputs(run)
  local o = run.o
  if not run.root then return end
  if o.checkpoint then
    -- a probe with a fresh name (mkstemp), never a fixed one a symlink could
    -- sit at; the checkpoint itself replaces a symlink at its path
    local ok, err = core.probe_dir(o.checkpoint:match("^(.*)/[^/]*$") or ".")
    if not ok then
      fail(run, "glow.train.run: cannot write the checkpoint " .. o.checkpoint .. ": " .. tostring(err))
    end
  end
  local ok, log = true, nil
  if o.log and o.resume then ok, log = pcall(trim_log, o.log, run.state.step) end
  if ok then ok, log = pcall(open_log, o.log, o.resume and true or false) end
  if not ok then fail(run, log) end
  run.log = log
end

--- One line to the log. A log that cannot be written (a full disk) is said
--- once and left alone from then on (later lines could land after a gap or
--- a torn row); training goes on.
local function log_line(run, text)
  local log = run.log
  if not log or run.log_failed then return end
  local done, why = log:write(text)
  if done then done, why = log:flush() end
  if not done then
    run.log_failed = tostring(why)
    run.say(string.format("step %d: cannot write the log %s: %s; training goes on without it", run.state.step,
      run.o.log, tostring(why)))
  end
end

--- Continue from the checkpoint the model was loaded from: its trainer
--- state must be sound and its settings those of this run.
local function resume(run)
  local model, state = run.model, run.state
  local info = model.checkpoint
  if model.averaged then
    error("glow.train.run: this model holds the Polyak average (glow.load with average = true); resume from "
      .. "glow.load(path) without it", 0)
  end
  if not info or not info.trainer then
    error("glow.train.run: resume needs a model from glow.load(checkpoint) with trainer state", 0)
  end
  local problem = type(info.trainer) ~= "table" and "it is not an object" or trainer_problem(info.trainer)
  if problem then error("glow.train.run: the checkpoint's trainer state is corrupt: " .. problem, 0) end
  local tr = info.trainer
  local saved = tr.settings or {}
  local change = epochs_change(run, tr, saved)
  if change == "finished" then run.finished = true end
  local off = { flip = "false", crop = "center", crop_from = "none" } -- how an augmentation that is off reads
  for _, k in ipairs { "flip", "crop", "crop_from" } do
    if saved[k] ~= run.settings[k] then
      error(string.format("glow.train.run: the checkpoint was trained with %s = %s; resuming with %s would not "
        .. "continue the same run (the training set's augmentation)", k, tostring(saved[k] or off[k]),
        tostring(run.settings[k] or off[k])), 0)
    end
  end
  for k, v in pairs(run.settings) do
    -- the epoch count is checked above
    if saved[k] ~= nil and saved[k] ~= v and k ~= "epochs" then
      error(string.format("glow.train.run: the checkpoint was trained with %s = %s; resuming with %s "
        .. "would not continue the same run", k, tostring(saved[k]), tostring(v)), 0)
    end
  end
  -- a finished run with a decaying schedule, extended: the added steps are
  -- a new stage of the same schedule (warmup, then the decay over them);
  -- a run extended before goes on with its stage
  local stage = change == "extend" and tr.step or tr.stage_start
  if stage and stage > 0 then
    run.opt = make_optimizer(run.o, run.model, run.cfg.total, stage)
    if change == "extend" then
      run.say(string.format("extending a finished run of %d epochs to %d: the %s schedule starts a new stage "
        .. "at step %d (warmup %d, then its decay over the %d added steps)", saved.epochs, run.cfg.epochs,
        run.settings.schedule, stage, run.settings.warmup, run.cfg.total - stage))
    end
  end
  local ok, err = run.opt:load_state(info.tensors, info.optimizer or {})
  if not ok then error("glow.train.run: " .. err, 0) end
  -- the checkpoint's tensors are copied into the model and the optimizer
  info.tensors = nil
  collectgarbage()
  for k, v in pairs(tr) do state[k] = v end
  state.settings = run.settings
  state.record = run.o.record or tr.record
  if stage and stage > 0 then state.stage_start = stage end
  run.seed = state.seed
end

--- Data-dependent initialization from init_size (256) images drawn at
--- random across the whole training set: a permutation seeded by (seed,
--- epoch 0) (the epochs' shuffles use epochs 1, 2, ...), so a folder sorted
--- by class still gives every class its share.
local function initialize(run)
  local ds = run.ds
  local k = math.min(run.cfg.init_size, ds:size())
  local order = core.permutation(ds:size(), run.seed, 0)
  local idx = table.move(order, 1, k, 1, {})
  local x, y = ds:batch(idx, { seed = run.seed, epoch = 0, n_bits = run.cfg.n_bits })
  if run.o.condition then y = run.o.condition(x, y) end
  run.model:initialize(x, y)
end

--- The first snapshot, the progress line, the result and the clock (which
--- goes on from a resumed run's wall time).
local function start(run)
  local o, opt = run.o, run.opt
  -- every rank computed the same initialization from the same images (or
  -- loaded the same checkpoint); start from rank 0's values all the same
  dist.broadcast(opt.value)
  if opt.ema then dist.broadcast(opt.ema) end
  if run.cfg.restore_after > 0 then opt:snapshot() end
  run.prog = progress_new(run.root and (o.progress == nil and "auto" or o.progress), run.say)
  run.result = { epochs = {}, optimizer = opt }
  run.t_start = core.now() - run.state.wall
  run.last_save = core.now()
end

--- A checkpoint that cannot be written mid-run (disk full, directory gone)
--- is reported and training goes on (the previous file stays as it was:
--- writes are atomic); the next one is tried on schedule. The last one,
--- at the end, raises. After each one written, on_checkpoint (rank 0).
local function save_checkpoint(run, final)
  local o, state, result = run.o, run.state, run.result
  if not o.checkpoint or not run.root then return end
  local ok, err = run.model:save(o.checkpoint, { optimizer = run.opt, trainer = state })
  run.last_save, run.saved_step = core.now(), state.step
  if ok then
    if o.on_checkpoint then o.on_checkpoint(state, run.model, run.opt, final or false) end
    return
  end
  if final then fail(run, "train: checkpoint failed: " .. tostring(err)) end
  result.checkpoint_failures = (result.checkpoint_failures or 0) + 1
  run.say(string.format("step %d: checkpoint failed: %s; training goes on (the previous checkpoint is kept)",
    state.step, tostring(err)))
end

--- A step with a non-finite loss or gradient: said, counted, and after
--- restore_after in a row the weights of the last snapshot come back with a
--- lower learning rate; after max_skipped in a row the run stops.
local function handle_skip(run, st)
  local cfg, opt = run.cfg, run.opt
  run.consecutive_skips = run.consecutive_skips + 1
  local skips = run.consecutive_skips
  local where = st.nonfinite or {}
  if st.exploded then
    run.say(string.format("step %d: exploding loss (train bits/dim %.4g > max_bpd %g); update skipped",
      run.state.step, st.bpd, cfg.max_bpd))
  else
    run.say(string.format("step %d: non-finite loss or gradient (loss %s; %d parameters with non-finite "
      .. "gradients%s); update skipped", run.state.step, tostring(st.loss), #where,
      #where > 0 and (", first " .. where[1] .. ", last " .. where[#where]) or ""))
  end
  if skips > cfg.max_skipped then
    error(string.format("train: %d consecutive steps with a non-finite or exploding loss or gradient; stopping "
      .. "(the weights were not updated by any of them)", skips), 0)
  end
  if cfg.restore_after > 0 and skips % cfg.restore_after == 0 then
    local from = opt:restore()
    opt.lr_scale = opt.lr_scale * cfg.lr_drop
    run.say(string.format("step %d: %d non-finite steps in a row: restored the weights of step %d, "
      .. "restarted the optimizer's moments, learning rate x%g (now %.3g)", run.state.step,
      skips, from, opt.lr_scale, opt:lr()))
  end
end

--- A finished step's progress line and log line. The image rate is
--- measured over a window restarted every 30 s.
local function report_step(run, ep, st)
  local cfg, state, opt = run.cfg, run.state, run.opt
  local now = core.now()
  local ips = ep.rate_n / math.max(now - ep.rate_t, 1e-9)
  local done_in_epoch = ep.batch - 1
  local left = (cfg.total - state.step) * cfg.batch / ips
  state.wall = now - run.t_start
  run.prog:show(string.format("epoch %d/%d  step %d/%d  bits/dim %.4f  %.1f img/s  ETA %s%s", ep.epoch,
    cfg.epochs, done_in_epoch, cfg.per_epoch, st.bpd, ips, fmt_time(left),
    opt.skipped > 0 and string.format("  skipped %d", opt.skipped) or ""))
  log_line(run, string.format("%d,%d,%d,%.6f,%.6f,%.6g,%.6g,%.2f,%.2f,,%d\n", state.step, ep.epoch,
    done_in_epoch, st.bpd, st.loss, st.lr or 0, st.grad_norm or 0, ips, state.wall, st.skipped and 1 or 0))
  if now - ep.rate_t > 30 then ep.rate_t, ep.rate_n = now, 0 end
end

--- The steps of one epoch, from the saved position on; sets run.stopped at
--- max_steps. Returns the epoch's tally: its start, the train bits/dim sum
--- over good steps, and batch, the next batch's number.
local function run_epoch(run, epoch)
  local o, cfg, state, opt = run.o, run.cfg, run.state, run.opt
  local ep = { epoch = epoch, t_start = core.now(), sum_bpd = 0, n_bpd = 0, batch = state.batch }
  ep.rate_t, ep.rate_n = core.now(), 0
  for x, y in run.ds:batches { size = cfg.batch, shuffle = true, seed = run.seed, epoch = epoch,
    start = state.batch, n_bits = cfg.n_bits, ranks = cfg.ranks } do
    if o.condition then y = o.condition(x, y) end
    local st = run.model:train_step(x, y, opt, { max_bpd = cfg.max_bpd or nil })
    state.step = state.step + 1
    run.run_steps = run.run_steps + 1
    ep.batch = ep.batch + 1
    state.batch, state.epoch = ep.batch, epoch
    ep.rate_n = ep.rate_n + (st.images or x:shape()[1]) -- the global batch under glow.distributed
    if st.skipped then
      handle_skip(run, st)
    else
      run.consecutive_skips = 0
      ep.sum_bpd, ep.n_bpd = ep.sum_bpd + st.bpd, ep.n_bpd + 1
      if cfg.restore_after > 0 and state.step % cfg.snapshot_every == 0 then opt:snapshot() end
    end
    report_step(run, ep, st)
    if o.on_step then o.on_step(st, state, run.model, opt) end
    if (o.checkpoint_every and state.step % o.checkpoint_every == 0)
        or (o.checkpoint_seconds and core.now() - run.last_save >= o.checkpoint_seconds) then
      save_checkpoint(run)
    end
    if o.max_steps and state.step >= o.max_steps then
      run.stopped = true
      break
    end
    -- a trapped SIGINT or SIGTERM (core.trap_signals) ends the run after
    -- this step (a single process: ranks could not agree on the step)
    if not cfg.ranks and core.interrupted() then
      run.interrupted = core.interrupted()
      break
    end
  end
  return ep
end

--- A complete epoch: the position moves to the next one, the test set is
--- evaluated, and the epoch's record is shown, kept and handed to on_epoch.
local function end_epoch(run, ep)
  local o, state, opt, result = run.o, run.state, run.opt, run.result
  local epoch = ep.epoch
  state.epoch, state.batch = epoch + 1, 1
  local rec = { epoch = epoch, train_bpd = ep.n_bpd > 0 and ep.sum_bpd / ep.n_bpd or nil,
    epoch_s = core.now() - ep.t_start, wall_s = core.now() - run.t_start }
  if o.test and o.eval ~= false then
    rec.test_bpd = evaluate(o, run.model, opt)
    log_line(run, string.format("%d,%d,%d,,,,,,%.2f,%.6f,\n", state.step, epoch, run.cfg.per_epoch, rec.wall_s,
      rec.test_bpd))
  end
  state.wall = core.now() - run.t_start
  run.prog:show(string.format("epoch %d/%d done: train bits/dim %s%s%s  (%s)", epoch, run.cfg.epochs,
    train.figure(rec.train_bpd), rec.test_bpd and string.format("  test bits/dim %.4f", rec.test_bpd) or "",
    opt.skipped > 0 and string.format("  skipped %d", opt.skipped) or "", fmt_time(rec.epoch_s)), true)
  result.epochs[#result.epochs + 1] = rec
  result.final_test_bpd = rec.test_bpd
  -- every epoch's end is a checkpoint (the last one is written by finish)
  if epoch < run.cfg.epochs and not run.stopped and run.saved_step ~= state.step then save_checkpoint(run) end
  if o.on_epoch then o.on_epoch(rec, run.model, opt) end
end

--- A run stopped by max_steps within an epoch: the test set is evaluated
--- (on eval_limit images when given) and the record kept as result.partial;
--- the position stays inside the epoch, so a resumed run finishes it.
local function stop_in_epoch(run, ep)
  local o, state, opt, result = run.o, run.state, run.opt, run.result
  local rec = { epoch = ep.epoch, batch = ep.batch - 1, partial = true,
    train_bpd = ep.n_bpd > 0 and ep.sum_bpd / ep.n_bpd or nil, epoch_s = core.now() - ep.t_start }
  if o.test and o.eval ~= false then
    rec.test_bpd = evaluate(o, run.model, opt)
    log_line(run, string.format("%d,%d,%d,,,,,,%.2f,%.6f,\n", state.step, ep.epoch, rec.batch,
      core.now() - run.t_start, rec.test_bpd))
  end
  rec.wall_s = core.now() - run.t_start
  run.prog:show(string.format("stopped at step %d (max_steps), batch %d/%d of epoch %d: train bits/dim %s%s",
    state.step, rec.batch, run.cfg.per_epoch, ep.epoch, train.figure(rec.train_bpd),
    rec.test_bpd and string.format("  test bits/dim %.4f", rec.test_bpd) or ""), true)
  result.partial = rec
  result.final_test_bpd = rec.test_bpd
end

--- The last checkpoint (which raises when it cannot be written), the log
--- closed, and the result.
local function finish(run)
  local state, result = run.state, run.result
  run.prog:close()
  state.wall = core.now() - run.t_start
  save_checkpoint(run, true)
  if run.log then pcall(run.log.close, run.log) end -- a failure was said at the flush
  result.steps = state.step
  result.run_steps = run.run_steps
  result.log_failed = run.log_failed
  result.state = state
  result.interrupted = run.interrupted
  result.finished_before = run.finished
  result.seconds = core.now() - run.t_call
  return result
end

--- run(opts) -> {steps, run_steps, epochs = {{epoch, train_bpd, test_bpd,
--- epoch_s, wall_s}...}, partial, final_test_bpd, optimizer, state, seconds,
--- log_failed, checkpoint_failures, interrupted, finished_before}:
--- interrupted is the signal's number when a trapped SIGINT or SIGTERM
--- (core.trap_signals) ended the run after a step (its checkpoint written);
--- finished_before is true when a resumed checkpoint had already done its
--- epochs or max_steps (no step is taken); partial is the record of an epoch that
--- max_steps cut short (its test_bpd on eval_limit images when given), and
--- then final_test_bpd; seconds is this call's wall clock, start to return;
--- state.wall the run's, resumed parts included (docs/TRAINING.md lists
--- every field).
--- opts: model, train (dataset), test, epochs, batch (64), optimizer ("adam",
--- "adamax", "sgd"), lr (1e-3), warmup (steps), schedule, clip, weight_decay,
--- polyak, seed, init_size (256), log (CSV path), checkpoint (path),
--- checkpoint_every (steps), checkpoint_seconds (also a checkpoint when this
--- much time has passed since the last; with a checkpoint path, every epoch's
--- end is one too), record (a table saved with the trainer state, as
--- state.record: the `glow` command keeps its options there), eval (true), eval_batch, eval_limit, progress
--- ("auto": redrawn in place on a terminal, plain lines otherwise; true:
--- always redrawn; "lines": a plain line at most every 10 s and one per epoch;
--- false: none), max_steps, resume (the model comes from glow.load),
--- max_skipped (20), restore_after (5), lr_drop (0.5), snapshot_every (200),
--- on_step(stats, state, model, opt), on_epoch(record, model, opt),
--- on_checkpoint(state, model, opt, final) (on rank 0, after each checkpoint
--- written: on the checkpoint_every / checkpoint_seconds schedule, at each
--- epoch's end, and the last one, where final is true; the `glow` command
--- writes its samples and curve there),
--- condition(x, y) -> what the model gets as y for the batch x with labels
--- y (a conditioning input of the model's own; see glow.Model).
--- max_bpd (100; false turns it off): a step whose train bits/dim exceed it
--- counts as exploding, and is treated like a non-finite one.
--- Resuming with more epochs than the checkpoint's: with a constant or step
--- schedule the run simply goes on; with a decaying one (wsd, cosine,
--- linear) a finished run is extended by a new stage: the warmup again, then
--- the schedule over the added steps only (a run stopped before its end must
--- be finished first). Fewer epochs than already trained is refused.
--- A step with a non-finite loss or gradient is skipped (no update) and
--- counted in the progress line and each epoch's line ("skipped N": the
--- run's running total, resumed steps included). After restore_after of
--- them in a row the weights come back from the last snapshot (taken every snapshot_every
--- good steps; one copy of the weights, plus one of the Polyak average),
--- the optimizer's moments restart, and the learning rate is multiplied by
--- lr_drop; training says so and goes on. After max_skipped in a row it
--- stops with an error. restore_after = 0 turns snapshots off.
function train.run(o)
  local t_call = core.now()
  local run = setup(o, check_options(o))
  run.t_call = t_call
  -- on resume the checkpoint's step is known before the log is opened (its
  -- lines after that step are dropped)
  if o.resume then resume(run) end
  open_outputs(run)
  if not o.resume and not run.model.initialized then initialize(run) end
  start(run)
  -- a run resumed from its final checkpoint (its epochs, or max_steps,
  -- already done) trains no step and leaves the parameters as they are
  if o.max_steps and run.state.step >= o.max_steps then run.finished = true end
  for epoch = run.state.epoch, run.finished and 0 or run.cfg.epochs do
    local ep = run_epoch(run, epoch)
    if run.interrupted then break end
    if run.stopped and ep.batch <= run.cfg.per_epoch then -- max_steps within the epoch
      stop_in_epoch(run, ep)
      break
    end
    end_epoch(run, ep)
    if run.stopped then break end
  end
  return finish(run)
end

return train
