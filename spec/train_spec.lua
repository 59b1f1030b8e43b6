local H = require "spec.helper"
local glow = H.glow

local tmpdir, rmdir = H.tmpdir, H.rmdir

local function dataset(n) return require("spec.idx").bars(glow, n) end

local CONFIG = { shape = { 8, 8, 1 }, levels = 2, depth = 2, width = 16, seed = 1 }

local function run(ds, extra)
  local losses = {}
  local o = { model = extra.model or glow.Glow(CONFIG), train = ds, test = ds, epochs = 2, batch = 8,
    lr = 2e-3, warmup = 4, seed = 3, polyak = 0.9, progress = false, init_size = 32,
    on_step = function(st) losses[#losses + 1] = st.loss end }
  for k, v in pairs(extra) do o[k] = v end
  local result = glow.train.run(o)
  return losses, result, o.model
end

describe("glow.train.run", function()
  local ds = dataset(64)

  it("learns: the loss falls and each epoch reports test bits/dim", function()
    local losses, result = run(ds, {})
    assert.equal(16, #losses)
    assert.is_true(losses[#losses] < losses[1])
    assert.equal(2, #result.epochs)
    assert.is_true(result.epochs[2].test_bpd < 8)
  end)

  it("returns the fields docs/TRAINING.md lists, the wall clock among them", function()
    local t0 = glow.core.now()
    local _, result = run(ds, {})
    local elapsed = glow.core.now() - t0
    assert.equal(16, result.steps)
    assert.equal(16, result.run_steps)
    assert.equal(result.epochs[2].test_bpd, result.final_test_bpd)
    assert.is_nil(result.partial)
    assert.is_nil(result.log_failed)
    assert.is_nil(result.checkpoint_failures)
    assert.equal(16, result.optimizer.t)
    assert.same({ 3, 1, 16 }, { result.state.epoch, result.state.batch, result.state.step })
    for i, rec in ipairs(result.epochs) do
      assert.equal(i, rec.epoch)
      assert.is_number(rec.train_bpd)
      assert.is_true(rec.epoch_s > 0 and rec.epoch_s <= rec.wall_s)
    end
    -- the wall clock: this call's seconds hold the training's (state.wall,
    -- from the first step on) and the initialization before it
    assert.is_true(result.epochs[1].wall_s < result.epochs[2].wall_s)
    assert.is_true(result.epochs[2].wall_s <= result.state.wall)
    assert.is_true(result.state.wall <= result.seconds and result.seconds <= elapsed)
  end)

  it("hands on_step the stats, the state, the model and the optimizer", function()
    local model, seen = glow.Glow(CONFIG), {}
    local _, result = run(ds, { model = model, max_steps = 3, on_step = function(st, state, m, opt)
      seen[#seen + 1] = { st.loss, state.step, m, opt, opt.t }
    end })
    assert.equal(3, #seen)
    for i, s in ipairs(seen) do
      assert.is_number(s[1])
      assert.equal(i, s[2])
      assert.equal(model, s[3])
      assert.equal(result.optimizer, s[4])
      assert.equal(i, s[5])
    end
  end)

  it("calls on_checkpoint after each checkpoint written: on schedule, at each epoch's end, and the last", function()
    local dir = tmpdir()
    local path, seen = dir .. "/c.safetensors", {}
    local _, result, model = run(ds, { checkpoint = path, checkpoint_every = 3,
      on_checkpoint = function(state, m, opt, final)
        -- the file on disk is the checkpoint of this step
        local saved = assert(glow.load(path)).checkpoint.trainer.step
        seen[#seen + 1] = { state.step, final, saved, m, opt }
      end })
    -- every 3 steps, the end of epoch 1 (step 8), the last (step 16, also the end of epoch 2)
    local steps = {}
    for i, s in ipairs(seen) do
      steps[i] = s[1]
      assert.equal(s[1], s[3])
      assert.equal(model, s[4])
      assert.equal(result.optimizer, s[5])
      assert.equal(i == #seen, s[2])
    end
    assert.same({ 3, 6, 8, 9, 12, 15, 16 }, steps)
    rmdir(dir)
  end)

  it("ends bitwise where it would have when on_checkpoint samples with the Polyak average", function()
    local dir = tmpdir()
    local function final_params(hook)
      local _, _, model = run(ds, { checkpoint = dir .. "/c.safetensors", checkpoint_every = 2, on_checkpoint = hook })
      local flat = {}
      for _, p in ipairs(model:parameters()) do flat[#flat + 1] = p.value:clone() end
      return flat
    end
    local plain, calls = final_params(nil), 0
    local sampled = final_params(function(_, m, opt)
      calls = calls + 1
      opt:with_average(function() return m:sample(4, { temperature = 0.7, seed = 5 }) end)
    end)
    assert.equal(9, calls) -- steps 2, 4, ..., 16, and the last checkpoint (after step 16 and its epoch's end)
    for i, v in ipairs(plain) do assert.tensor_equal(v, sampled[i]) end -- the same steps on the same data: bitwise
    rmdir(dir)
  end)

  it("gives the same losses step for step with the same seed", function()
    local a = run(ds, {})
    local b = run(ds, {})
    assert.same(a, b)
  end)

  it("resumed from a checkpoint mid-epoch follows the same loss curve as a run left alone", function()
    local dir = tmpdir()
    local whole, wres = run(ds, {})
    local first = run(ds, { max_steps = 5, checkpoint = dir .. "/c.safetensors" })
    assert.equal(5, #first)
    local model = assert(glow.load(dir .. "/c.safetensors"))
    local rest, rres = run(ds, { model = model, resume = true, checkpoint = dir .. "/c.safetensors" })
    assert.equal(16, #first + #rest)
    for i = 1, 16 do
      local v = i <= 5 and first[i] or rest[i - 5]
      assert.close(whole[i], v, 1e-5, 0, string.format("step %d", i))
    end
    assert.close(wres.final_test_bpd, rres.final_test_bpd, 1e-5)
    rmdir(dir)
  end)

  it("refuses to resume with other settings, or from a model without trainer state", function()
    local dir = tmpdir()
    run(ds, { max_steps = 3, checkpoint = dir .. "/c.safetensors" })
    local model = assert(glow.load(dir .. "/c.safetensors"))
    assert.has_error(function()
      run(ds, { model = model, resume = true, lr = 1e-3 })
    end, "glow.train.run: the checkpoint was trained with lr = 0.002; resuming with 0.001 would not continue the "
      .. "same run")
    assert.has_error(function()
      run(ds, { model = assert(glow.load(dir .. "/c.safetensors")), resume = true, batch = 4 })
    end, "glow.train.run: the checkpoint was trained with batch = 8; resuming with 4 would not continue the same run")
    local fresh = glow.Glow(CONFIG)
    assert.has_error(function() run(ds, { model = fresh, resume = true }) end,
      "glow.train.run: resume needs a model from glow.load(checkpoint) with trainer state")
    -- trainer or optimizer state edited into nonsense: refused with what is wrong
    local json = require "glow.json"
    local tensors, meta = assert(glow.checkpoint.read(dir .. "/c.safetensors"))
    local function edited(key, field, value)
      local list, md = {}, {}
      for name, t in pairs(tensors) do list[#list + 1] = { name = name, value = t } end
      for k, v in pairs(meta) do md[k] = v end
      local t = json.decode(md[key])
      t[field] = value
      md[key] = json.encode(t)
      local path = dir .. "/edited.safetensors"
      assert(glow.checkpoint.write(path, list, md))
      return assert(glow.load(path))
    end
    assert.has_error(function() run(ds, { model = edited("glow.trainer", "epoch", "x"), resume = true }) end,
      "glow.train.run: the checkpoint's trainer state is corrupt: epoch must be an integer >= 1, got x")
    assert.has_error(function() run(ds, { model = edited("glow.trainer", "step", -4), resume = true }) end,
      "glow.train.run: the checkpoint's trainer state is corrupt: step must be an integer >= 0, got -4")
    assert.has_error(function() run(ds, { model = edited("glow.optimizer", "t", -1), resume = true }) end,
      "glow.train.run: optimizer state is corrupt: t = -1, skipped = 0, t0 = 0, lr_scale = 1 (want integers "
      .. "t >= t0 >= 0, skipped >= 0, and a finite lr_scale >= 0)")
    rmdir(dir)
  end)

  it("stopped by max_steps within an epoch still reports test bits/dim, on eval_limit images", function()
    local lines = {}
    local _, result = run(ds, { max_steps = 3, eval_limit = 16, progress = "lines",
      print = function(l) lines[#lines + 1] = l end })
    assert.equal(0, #result.epochs)
    assert.is_true(result.partial.partial)
    assert.equal(3, result.partial.batch)
    assert.is_number(result.final_test_bpd)
    assert.equal(result.partial.test_bpd, result.final_test_bpd)
    -- the same figure as evaluating the first 16 test images with the Polyak average
    local expect = result.optimizer:with_average(function()
      return result.optimizer.model:bits_per_dim(ds, { limit = 16 })
    end)
    assert.close(expect, result.final_test_bpd, 1e-9)
    assert.matches("stopped at step 3 %(max_steps%), batch 3/8 of epoch 1: train bits/dim [%d.]+  test bits/dim [%d.]+",
      table.concat(lines, "\n"))
  end)

  it("draws the initialization images at random across the whole set (every class of a sorted folder)", function()
    -- a folder with one subfolder per class: glow.data.images lists it sorted by class, so the
    -- first 16 of its 64 images are all class 0
    local dir = tmpdir()
    local labels = ds:labels()
    for i = 1, ds:size() do
      local sub = string.format("%s/class%d", dir, labels[i])
      os.execute("mkdir -p '" .. sub .. "'")
      assert(glow.image.save_grid(string.format("%s/%03d.png", sub, i), ds:batch({ i }, { noise = false }),
        { cols = 1, padding = 0 }))
    end
    local folder = assert(glow.data.images(dir))
    local flabels = folder:labels()
    for i = 2, #flabels do assert.is_true(flabels[i - 1] <= flabels[i]) end
    local per = 16
    local seen
    local batch = folder.batch
    folder.batch = function(self, idx, opts)
      seen = idx
      return batch(self, idx, opts)
    end
    run(folder, { max_steps = 1, init_size = per, eval = false })
    assert.equal(per, #seen)
    local classes, k = {}, 0
    for _, v in ipairs(seen) do
      if not classes[flabels[v]] then k = k + 1 end
      classes[flabels[v]] = true
    end
    assert.is_true(k >= 3, "the initialization sample holds " .. k .. " of 4 classes")
    -- seeded: the same sample again, another with another seed
    local again = seen
    run(folder, { max_steps = 1, init_size = per, eval = false })
    assert.same(again, seen)
    run(folder, { max_steps = 1, init_size = per, eval = false, seed = 4 })
    assert.are_not.same(again, seen)
    rmdir(dir)
  end)

  it("with flips: a resumed run follows the same curve; resuming without them is refused", function()
    local dir = tmpdir()
    assert(glow.data.pack(ds, dir .. "/bars.glowpack"))
    local flipped = assert(glow.data.open_pack(dir .. "/bars.glowpack", { flip = true }))
    local plain = assert(glow.data.open_pack(dir .. "/bars.glowpack"))
    local whole = run(flipped, {})
    local unflipped = run(plain, {})
    assert.are_not.same(whole, unflipped) -- the flips change the batches
    local first = run(flipped, { max_steps = 5, checkpoint = dir .. "/c.safetensors" })
    local rest = run(flipped, { model = assert(glow.load(dir .. "/c.safetensors")), resume = true })
    for i = 1, 16 do
      assert.close(whole[i], i <= 5 and first[i] or rest[i - 5], 1e-5, 0, string.format("step %d", i))
    end
    assert.is_true(assert(glow.load(dir .. "/c.safetensors")).checkpoint.trainer.settings.flip)
    assert.has_error(function()
      run(plain, { model = assert(glow.load(dir .. "/c.safetensors")), resume = true })
    end, "glow.train.run: the checkpoint was trained with flip = true; resuming with false would not continue the "
      .. "same run (the training set's augmentation)")
    rmdir(dir)
  end)

  it("extends a finished run with more epochs: a new stage of its decaying schedule", function()
    local dir = tmpdir()
    local path = dir .. "/c.safetensors"
    local lines = {}
    local first = run(ds, { epochs = 1, schedule = "wsd", checkpoint = path })
    assert.equal(8, #first)
    local model = assert(glow.load(path))
    local rest, result = run(ds, { model = model, resume = true, epochs = 3, schedule = "wsd", checkpoint = path,
      print = function(l) lines[#lines + 1] = l end })
    assert.equal(16, #rest)
    assert.equal(24, result.steps)
    assert.equal(3, #result.epochs + 1) -- epochs 2 and 3 ran here
    assert.equal(3, result.epochs[2].epoch)
    assert.matches("extending a finished run of 1 epochs to 3: the wsd schedule starts a new stage at step 8 "
      .. "(warmup 4, then its decay over the 16 added steps)", table.concat(lines, "\n"), 1, true)
    -- the new stage: warmup again from step 9, full rate after it, decayed to 0 at the end
    local opt = result.optimizer
    assert.close(2e-3 / 4, opt:lr(9), 1e-12)
    assert.close(2e-3, opt:lr(13), 1e-12)
    assert.close(0, opt:lr(24), 1e-12)
    -- the checkpoint records the stage, so a later resume continues it
    local m2 = assert(glow.load(path))
    assert.equal(8, m2.checkpoint.trainer.stage_start)
    assert.equal(3, m2.checkpoint.trainer.settings.epochs)
    -- fewer epochs than trained, or a decaying run stopped before its end, are refused
    assert.has_error(function() run(ds, { model = m2, resume = true, epochs = 2, schedule = "wsd" }) end,
      "glow.train.run: the checkpoint has already trained 3 epochs; ask for more (epochs > 3) to extend it")
    run(ds, { epochs = 2, max_steps = 5, schedule = "wsd", checkpoint = path })
    assert.has_error(function()
      run(ds, { model = assert(glow.load(path)), resume = true, epochs = 4, schedule = "wsd" })
    end, "glow.train.run: the checkpoint stopped in epoch 1 of 2, with the wsd learning rate decaying over 2 "
      .. "epochs; resume with epochs = 2 to finish that run, then extend it with more epochs")
    rmdir(dir)
  end)

  it("saves the Polyak average, which glow.load gives back with average = true", function()
    local dir = tmpdir()
    local path = dir .. "/c.safetensors"
    local _, result, model = run(ds, { checkpoint = path }) -- polyak = 0.9
    local x = ds:batch({ 1, 2, 3 }, {})
    local want = result.optimizer:with_average(function() return model:log_prob(x):clone() end)
    local avg = assert(glow.load(path, { average = true }))
    -- the same weights (the file holds their float32 bytes) through the same
    -- kernels: bitwise
    assert.tensor_equal(want, avg:log_prob(x))
    local last = assert(glow.load(path))
    assert.tensor_equal(model:log_prob(x), last:log_prob(x))
    assert.is_true(want:max_abs_diff(last:log_prob(x)) > 0)
    assert.has_error(function() run(ds, { model = avg, resume = true }) end,
      "glow.train.run: this model holds the Polyak average (glow.load with average = true); resume from "
      .. "glow.load(path) without it")
    -- a run without polyak has no average to give
    glow.train.run { model = glow.Glow(CONFIG), train = ds, epochs = 1, batch = 8, lr = 2e-3, warmup = 2, seed = 3,
      progress = false, init_size = 32, eval = false, checkpoint = path }
    local got, err = glow.load(path, { average = true })
    assert.is_nil(got)
    assert.equal(path .. " holds no Polyak average (train with polyak > 0, or load it without average)", err)
    rmdir(dir)
  end)

  it("writes a CSV log with a header, one row per step and the test figure per epoch", function()
    local dir = tmpdir()
    run(ds, { log = dir .. "/log.csv", epochs = 1 })
    local lines = {}
    for l in io.lines(dir .. "/log.csv") do lines[#lines + 1] = l end
    assert.equal("step,epoch,batch,bpd,loss,lr,grad_norm,images_per_s,wall_s,test_bpd,skipped", lines[1])
    assert.equal(1 + 8 + 1, #lines)
    assert.matches("^8,1,8,,,,,,[%d.]+,[%d.]+,$", lines[10])
    rmdir(dir)
  end)

  it("refuses an unwritable checkpoint or log path before training", function()
    local model = glow.Glow(CONFIG)
    local ok, err = pcall(glow.train.run, { model = model, train = ds, checkpoint = "/nonexistent/dir/c.safetensors",
      progress = false })
    assert.is_false(ok)
    assert.matches("cannot write the checkpoint /nonexistent/dir/c.safetensors", err, 1, true)
    assert.is_false(model.initialized)
    ok, err = pcall(glow.train.run, { model = model, train = ds, log = "/nonexistent/dir/log.csv", progress = false })
    assert.is_false(ok)
    assert.matches("cannot write the log", err, 1, true)
  end)
end)

describe("glow.train.run after non-finite steps in a row", function()
  local ds = dataset(64)

  --- a model whose loss is NaN on the given calls of loss_and_grad
  local function faulty(bad)
    local m = glow.Glow(CONFIG)
    local calls, orig = 0, m.loss_and_grad
    m.loss_and_grad = function(self, x, y)
      calls = calls + 1
      local st = orig(self, x, y)
      if bad[calls] then st.loss = 0 / 0 end
      return st
    end
    return m
  end

  it("restores the last snapshot, restarts the moments, lowers the rate, says so and goes on", function()
    local bad = {}
    for c = 6, 8 do bad[c] = true end -- steps 6, 7, 8
    local lines = {}
    local _, result = run(ds, { model = faulty(bad), restore_after = 3, snapshot_every = 2,
      print = function(l) lines[#lines + 1] = l end })
    local opt = result.optimizer
    assert.equal(3, opt.skipped)
    assert.equal(0.5, opt.lr_scale)
    local said = table.concat(lines, "\n")
    assert.matches("step 8: 3 non-finite steps in a row: restored the weights of step 4, restarted the "
      .. "optimizer's moments, learning rate x0.5", said, 1, true)
    -- the run went on to the end: 16 steps, 13 updates
    assert.equal(16, result.steps)
    assert.equal(16, opt.t + opt.skipped)
    assert.equal(5, opt.t0) -- the moments restarted after the 5 updates before the fault
    assert.is_true(opt.value:all_finite())
  end)

  it("puts the weights back exactly as they were at the snapshot", function()
    local bad = { [4] = true, [5] = true }
    local m = faulty(bad)
    local at = {}
    glow.train.run { model = m, train = ds, epochs = 1, batch = 8, lr = 2e-3, warmup = 1, seed = 3,
      progress = false, init_size = 32, restore_after = 2, snapshot_every = 2, eval = false, print = function() end,
      optimizer = "adam", max_steps = 6,
      on_step = function(_, state) at[state.step] = m._arena.value:clone() end }
    -- step 2 took a snapshot; steps 4 and 5 were skipped, the second restored step 2's weights
    assert.is_true(at[3]:max_abs_diff(at[2]) > 0)
    assert.equal(0, at[5]:max_abs_diff(at[2]))
    assert.is_true(at[6]:max_abs_diff(at[5]) > 0)
  end)

  it("counts skipped steps in the progress line and says which step was skipped", function()
    local lines = {}
    run(ds, { model = faulty({ [3] = true, [11] = true }), progress = "lines",
      print = function(l) lines[#lines + 1] = l end })
    local said = table.concat(lines, "\n")
    assert.matches("step 3: non-finite loss or gradient (loss nan", said:gsub("-nan", "nan"), 1, true)
    assert.matches("epoch 1/2 done: train bits/dim [%d.]+  test bits/dim [%d.]+  skipped 1  %(", said)
    assert.matches("epoch 2/2 done: train bits/dim [%d.]+  test bits/dim [%d.]+  skipped 2  %(", said)
  end)

  it("refuses an unknown progress mode", function()
    assert.has_error(function() run(ds, { progress = "bar" }) end,
      'glow.train.run: progress must be "auto", "lines", true or false, got bar')
  end)

  it("still stops after max_skipped in a row", function()
    local bad = setmetatable({}, { __index = function(_, c) return c >= 3 end })
    assert.has_error(function()
      run(ds, { model = faulty(bad), restore_after = 2, max_skipped = 6, print = function() end })
    end, "train: 7 consecutive steps with a non-finite or exploding loss or gradient; stopping (the weights were not "
      .. "updated by any of them)")
  end)

  it("goes on when a checkpoint cannot be written mid-run, and writes the next one", function()
    local dir = tmpdir()
    local sub = dir .. "/ck"
    assert(os.execute("mkdir -p '" .. sub .. "'"))
    local path = sub .. "/c.safetensors"
    local lines = {}
    local _, result = run(ds, { checkpoint = path, checkpoint_every = 4, print = function(l) lines[#lines + 1] = l end,
      on_step = function(_, state)
        -- the directory goes away before the step-8 checkpoint and is back for step 12
        if state.step == 7 then rmdir(sub) end
        if state.step == 10 then assert(os.execute("mkdir -p '" .. sub .. "'")) end
      end })
    assert.equal(16, result.steps)
    assert.equal(1, result.checkpoint_failures)
    assert.matches("step 8: checkpoint failed: ", table.concat(lines, "\n"), 1, true)
    assert.matches("training goes on", table.concat(lines, "\n"), 1, true)
    local m = assert(glow.load(path))
    assert.equal(16, m.checkpoint.trainer.step)
    rmdir(dir)
  end)

  it("goes on when the log cannot be written (a full disk), and says so once", function()
    local f = io.open("/dev/full", "w")
    if not f then return pending("no /dev/full here") end
    f:close()
    local dir = tmpdir()
    assert(os.execute("ln -s /dev/full '" .. dir .. "/log.csv'"))
    local lines = {}
    local losses, result = run(ds, { log = dir .. "/log.csv", print = function(l) lines[#lines + 1] = l end })
    assert.equal(16, #losses)
    assert.equal(2, #result.epochs)
    local said = table.concat(lines, "\n")
    assert.matches("^step %d+: cannot write the log " .. dir:gsub("%p", "%%%0") .. "/log%.csv: No space left on "
      .. "device; training goes on without it$", said)
    assert.equal("No space left on device", result.log_failed)
    rmdir(dir)
  end)

  it("treats a finite loss above max_bpd like a non-finite one: skipped, said, counted", function()
    local m = glow.Glow(CONFIG)
    local calls, orig = 0, m.loss_and_grad
    m.loss_and_grad = function(self, x, y)
      calls = calls + 1
      local st = orig(self, x, y)
      if calls == 4 then st.loss, st.bpd = 5.2e11, 5.2e11 end -- finite, but exploded
      return st
    end
    local lines = {}
    local _, result = run(ds, { model = m, print = function(l) lines[#lines + 1] = l end })
    assert.equal(1, result.optimizer.skipped)
    assert.equal(15, result.optimizer.t)
    assert.matches("step 4: exploding loss (train bits/dim 5.2e+11 > max_bpd 100); update skipped",
      table.concat(lines, "\n"), 1, true)
    -- max_bpd = false turns the check off
    local _, r2 = run(ds, { max_bpd = false, max_steps = 2 })
    assert.equal(0, r2.optimizer.skipped)
  end)

  it("refuses bad settings", function()
    for _, case in ipairs {
      { { epochs = 0 }, "glow.train.run: epochs must be an integer >= 1, got 0" },
      { { batch = 2.5 }, "glow.train.run: batch must be an integer >= 1, got 2.5" },
      { { eval_batch = 0 }, "glow.train.run: eval_batch must be an integer >= 1, got 0" },
      { { max_steps = 0 }, "glow.train.run: max_steps must be an integer >= 1, got 0" },
      { { checkpoint_every = 0 }, "glow.train.run: checkpoint_every must be an integer >= 1, got 0" },
      { { checkpoint_every = -3 }, "glow.train.run: checkpoint_every must be an integer >= 1, got -3" },
      { { eval_limit = "10" }, "glow.train.run: eval_limit must be an integer >= 1, got 10" },
      { { max_skipped = -1 }, "glow.train.run: max_skipped must be an integer >= 0, got -1" },
      { { init_size = 0 }, "glow.train.run: init_size must be an integer >= 1, got 0" },
      { { seed = -2 }, "glow.train.run: seed must be an integer >= 0, got -2" },
      { { max_bpd = -5 }, "glow.train.run: max_bpd must be a number > 0 or false, got -5" },
      { { on_step = 3 }, "glow.train.run: on_step must be a function, got number" },
    } do
      assert.has_error(function() run(ds, case[1]) end, case[2])
    end
    assert.has_error(function() run(ds, { restore_after = -1 }) end,
      "glow.train.run: restore_after must be an integer >= 0, got -1")
    assert.has_error(function() run(ds, { lr_drop = 2 }) end,
      "glow.train.run: lr_drop must be a number in (0, 1], got 2")
    assert.has_error(function() run(ds, { snapshot_every = 0 }) end,
      "glow.train.run: snapshot_every must be an integer >= 1, got 0")
  end)
end)

describe("train_step", function()
  --- an initialized model, a batch of 8 and an Adam optimizer
  local function setup()
    local m = glow.Glow(CONFIG)
    local x = dataset(16):batch({ 1, 2, 3, 4, 5, 6, 7, 8 }, {})
    m:initialize(x)
    return m, x, glow.optim.Adam(m, { lr = 1e-3 })
  end

  it("skips the update on a non-finite loss and leaves the weights as they were", function()
    local m, x, opt = setup()
    m.prior.logs:set(1, 0 / 0)
    local before = opt.value:clone()
    local st = m:train_step(x, nil, opt)
    assert.is_true(st.skipped)
    assert.equal(1, opt.skipped)
    assert.equal(0, opt.t)
    local d = opt.value:max_abs_diff(before)
    assert.is_true(d ~= d or d == 0) -- the NaN we planted stays; nothing else moved
  end)

  it("skips the update on a finite loss with an infinite gradient and names the parameter", function()
    local m, x, opt = setup()
    -- the first coupling network's backward overflows one weight's gradient
    local coupling
    m:apply(function(mod) coupling = coupling or (mod.net and mod) end)
    local net, backward = coupling.net, coupling.net.backward
    local p = net:parameters()[1]
    net.backward = function(...)
      local r = table.pack(backward(...))
      p.grad:set(1, math.huge)
      return table.unpack(r, 1, r.n)
    end
    local before = opt.value:clone()
    local st = m:train_step(x, nil, opt)
    assert.is_true(st.loss == st.loss and math.abs(st.loss) < math.huge)
    assert.is_true(st.skipped)
    assert.equal(1, #st.nonfinite)
    assert.matches("^level1%..*net%." .. p.name:gsub("%.", "%%.") .. "$", st.nonfinite[1])
    assert.equal(1, opt.skipped)
    assert.equal(0, opt.t)
    assert.equal(0, opt.value:max_abs_diff(before))
    -- the next step, without the overflow, updates
    net.backward = backward
    assert.is_nil(m:train_step(x, nil, opt).skipped)
    assert.equal(1, opt.t)
    assert.is_true(opt.value:max_abs_diff(before) > 0)
  end)
end)

describe("checkpoints", function()
  local dir
  local ds = dataset(16)
  local function saved()
    dir = tmpdir()
    local m = glow.Glow(CONFIG)
    m:initialize(ds:batch({ 1, 2, 3, 4 }, {}))
    assert(m:save(dir .. "/m.safetensors"))
    return m, dir .. "/m.safetensors"
  end
  after_each(function() if dir then rmdir(dir) end end)

  it("round-trip the model: same log-density after glow.load", function()
    local m, path = saved()
    local m2 = assert(glow.load(path))
    local x = ds:batch({ 5, 6 }, {})
    -- the same weights through the same kernels: bitwise
    assert.tensor_equal(m:log_prob(x), m2:log_prob(x))
  end)

  it("round-trip every permutation and coupling exactly (glow.load builds placeholders, then copies)", function()
    dir = tmpdir()
    local x = ds:batch({ 1, 2, 3, 4 }, {})
    for _, perm in ipairs { "invconv_lu", "invconv", "shuffle", "reverse" } do
      for _, coupling in ipairs { "affine", "additive" } do
        local m = glow.Glow { shape = { 8, 8, 1 }, levels = 2, depth = 2, width = 8, seed = 5, permutation = perm,
          coupling = coupling }
        m:initialize(x)
        local path = dir .. "/" .. perm .. "-" .. coupling .. ".safetensors"
        assert(m:save(path))
        local back = assert(glow.load(path))
        assert.tensor_equal(m:log_prob(x), back:log_prob(x))
        -- 4 steps there and back, sums of at most 3*3*4, 8 and 3*3*8 products
        assert.tensor_near(x, back:decode((back:encode(x))), 2 * 4 * H.rtol(36, 8, 72))
      end
    end
  end)

  it("that are truncated or corrupt load as nil and a message", function()
    local _, path = saved()
    local f = assert(io.open(path, "rb"))
    local bytes = f:read("a")
    f:close()
    for _, cut in ipairs { 0, 5, 100, #bytes // 2, #bytes - 1 } do
      local g = assert(io.open(path, "wb"))
      g:write(bytes:sub(1, cut))
      g:close()
      local m, err = glow.load(path)
      assert.is_nil(m)
      assert.matches(path, err, 1, true)
    end
    local g = assert(io.open(path, "wb"))
    g:write(bytes:sub(1, 20) .. "\0\0\0" .. bytes:sub(24))
    g:close()
    local m, err = glow.load(path)
    assert.is_nil(m)
    assert.is_string(err)
  end)

  it("of another architecture are refused with the differing tensor named", function()
    local _, path = saved()
    local other = glow.Glow { shape = { 8, 8, 1 }, levels = 2, depth = 2, width = 8, seed = 1 }
    local ok, err = other:load(path)
    assert.is_nil(ok)
    assert.matches("holds another architecture: level1.step1.coupling.net.1.weight has shape {3, 3, 2, 16}, "
      .. "this model has {3, 3, 2, 8}", err, 1, true)
  end)

  it("to an unwritable path return nil and a message, leaving nothing behind", function()
    local m = saved()
    local ok, err = m:save("/nonexistent/dir/m.safetensors")
    assert.is_nil(ok)
    assert.matches("/nonexistent/dir/m.safetensors: cannot create the temporary file "
      .. "/nonexistent/dir/m.safetensors.tmp%-%d+: No such file or directory", err)
    -- a directory in the way: the rename fails, the temporary file goes, the directory stays
    assert(os.execute("mkdir '" .. dir .. "/in-the-way'"))
    ok, err = m:save(dir .. "/in-the-way")
    assert.is_nil(ok)
    assert.matches("in-the-way: cannot rename the temporary file", err, 1, true)
    local p = io.popen("ls -A '" .. dir .. "'")
    local listing = p:read("a")
    p:close()
    assert.equal("in-the-way\nm.safetensors\n", listing)
  end)

  it("of another kind load as nil and a message that says what is wrong", function()
    local m, path = saved()
    local ckpt = glow.checkpoint
    local tensors, meta = assert(ckpt.read(path))
    local function rewrite(drop, changes)
      local list = {}
      for _, p in ipairs(m:parameters()) do
        if p.name ~= drop then list[#list + 1] = { name = p.name, value = tensors[p.name] } end
      end
      for name, t in pairs(tensors) do
        if name:sub(1, 7) == "buffer." then list[#list + 1] = { name = name, value = t } end
      end
      local md = {}
      for k, v in pairs(meta) do md[k] = v end
      for k, v in pairs(changes or {}) do md[k] = v or nil end
      local out = dir .. "/other.safetensors"
      assert(ckpt.write(out, list, md))
      return out
    end
    local other = rewrite("level1.step1.actnorm.bias")
    local got, err = glow.load(other)
    assert.is_nil(got)
    assert.equal("checkpoint " .. other .. " holds another architecture: no tensor level1.step1.actnorm.bias", err)
    -- model:load of the same file says the same
    got, err = glow.Glow(CONFIG):load(other)
    assert.is_nil(got)
    assert.matches("no tensor level1.step1.actnorm.bias", err, 1, true)
    -- a safetensors file from elsewhere
    assert(ckpt.write(dir .. "/plain.safetensors", { { name = "w", value = glow.Tensor { 2 } } }))
    got, err = glow.load(dir .. "/plain.safetensors")
    assert.is_nil(got)
    assert.equal(dir .. "/plain.safetensors is not a glow checkpoint (format nil)", err)
    -- a stored configuration that is not JSON, or that glow.Glow refuses
    other = rewrite(nil, { ["glow.config"] = "{\"shape\": [8, 8" })
    got, err = glow.load(other)
    assert.is_nil(got)
    assert.matches(other .. ": bad configuration: json: ", err, 1, true)
    other = rewrite(nil, { ["glow.config"] = '{"shape": [8, 8, 1], "levels": 2, "depth": 0}' })
    got, err = glow.load(other)
    assert.is_nil(got)
    assert.matches(other .. ": glow.Glow: option depth must be a positive integer, got 0", err, 1, true)
    -- a configuration far bigger than the tensors: refused before any of it is built (width 30000
    -- would take 7 GiB for its 1x1 convolutions alone)
    other = rewrite(nil, { ["glow.config"] = meta["glow.config"]:gsub('"width":%d+', '"width":30000') })
    local t0 = os.clock()
    got, err = glow.load(other)
    assert.is_nil(got)
    assert.matches(other .. ": its configuration needs at least %d+ parameter values, but the file holds %d+: "
      .. "the configuration is corrupt or does not belong to these tensors", err)
    assert.is_true(os.clock() - t0 < 1, "took " .. os.clock() - t0 .. " s")
    -- many channels and little else: the 1500 x 1500 LU factors alone need 4.5 million values
    other = rewrite(nil, { ["glow.config"] = '{"shape": [2, 2, 375], "levels": 1, "depth": 1, "width": 1, '
      .. '"coupling": "additive", "learn_top": false}' })
    t0 = os.clock()
    got, err = glow.load(other)
    assert.is_nil(got)
    assert.matches("its configuration needs at least %d+ parameter values", err)
    assert.is_true(os.clock() - t0 < 1, "took " .. os.clock() - t0 .. " s")
  end)

  it("made with a custom coupling network ask for it, and load with it", function()
    local function net(cin, cout) return glow.nn.ZeroConv2d(cin, cout) end
    local cfg = {}
    for k, v in pairs(CONFIG) do cfg[k] = v end
    cfg.net = net
    local m = glow.Glow(cfg)
    local x = ds:batch({ 1, 2, 3, 4 }, {})
    m:initialize(x)
    dir = tmpdir()
    local path = dir .. "/custom.safetensors"
    assert(m:save(path))
    local got, err = glow.load(path)
    assert.is_nil(got)
    assert.equal(path .. " was made with a custom coupling network: pass it as glow.load(path, {net = fn})", err)
    got = assert(glow.load(path, { net = net }))
    assert.tensor_equal(m:log_prob(x), got:log_prob(x))
  end)

  it("that are missing load as nil and a message", function()
    local m, err = glow.load("/nonexistent/m.safetensors")
    assert.is_nil(m)
    assert.matches("/nonexistent/m.safetensors", err, 1, true)
  end)
end)
