local H = require "spec.helper"

local glow = H.glow

--- Run lua/bin/glow with args (a string): exit code, stdout, stderr.
local function glow_cmd(args, tmp) return H.run_lua("lua/bin/glow " .. args, tmp) end

--- A folder DIR/train and DIR/test of 8x8 gray PNGs in two classes.
local function make_folder(dir, n_train, n_test)
  for split, n in pairs { train = n_train, test = n_test } do
    for k = 0, 1 do
      local sub = string.format("%s/%s/class%d", dir, split, k)
      H.mkdir(sub)
      for i = 1, n // 2 do
        local px = {}
        for r = 0, 7 do
          for c = 0, 7 do
            local v = (c == 2 + 3 * k) and 220 or 30 + ((r * 3 + c + i) % 7) * 12
            px[#px + 1] = (v + 0.5) / 256 - 0.5
          end
        end
        assert(glow.image.save_grid(string.format("%s/%03d.png", sub, i), glow.Tensor.from(px, { 1, 8, 8, 1 }),
          { cols = 1, padding = 0 }))
      end
    end
  end
end

local function one_line(s) return s:gsub("\n$", ""):find("\n", 1, true) == nil end

local function mean(v)
  local s = 0
  for _, x in ipairs(v) do s = s + x end
  return s / #v
end

--- The per-image bits/dim column of a `glow eval --csv` file.
local function csv_bpd(path)
  local out = {}
  for line in io.lines(path) do
    local v = tonumber(line:match(",([^,]+)$"))
    if v then out[#out + 1] = v end
  end
  return out
end

--- Every parameter of a and b bitwise equal: the number of tensors that differ.
local function differing(a, b)
  local pa, pb, n = a:parameters(), b:parameters(), 0
  assert.equal(#pa, #pb)
  for i, p in ipairs(pa) do
    assert.equal(p.name, pb[i].name)
    if p.value:max_abs_diff(pb[i].value) ~= 0 then n = n + 1 end
  end
  return n
end

describe("model files through the glow command", function()
  local tmp, data
  setup(function()
    tmp = H.tmpdir()
    data = tmp .. "/data"
    make_folder(data, 32, 16)
  end)
  teardown(function() H.rmdir(tmp) end)

  -- each example that builds a model, with tiny options
  local EXAMPLES = {
    realnvp = "--model-option width=4",
    flowpp = "--model-option width=4 --model-option depth=1 --model-option levels=2",
    superres = "--model-option width=4 --model-option depth=1",
    custom_multiscale = "--model-option width=4 --model-option depth=1 --model-option components=2",
  }
  for name, mopts in pairs(EXAMPLES) do
    it("trains examples/" .. name .. ".lua, then evaluates, samples, encodes, decodes and inspects it", function()
      local file = "examples/" .. name .. ".lua"
      local out = tmp .. "/" .. name
      local code, stdout, stderr = glow_cmd(string.format("train --data %s --model %s %s --max-steps 3 --warmup 1 "
        .. "--batch 8 --no-progress --out %s", data, file, mopts, out), tmp)
      assert.equal(0, code, stderr)
      assert.matches("test bits/dim: [%d.]+ %(16 test images%)", stdout)
      local ckpt = out .. "/checkpoint.safetensors"

      -- eval: the command's per-image figures against the library's own
      -- evaluation of the same checkpoint (Polyak average, fixed noise)
      code, stdout, stderr = glow_cmd(string.format("eval %s %s --model %s --csv %s/per.csv", ckpt, data, file, out),
        tmp)
      assert.equal(0, code, stderr)
      local cmd_bpd = mean(csv_bpd(out .. "/per.csv"))
      local cwd = H.root
      local model = assert(glow.load(ckpt, { model = cwd .. file, average = true }))
      local test = assert(glow.data.images(data .. "/test", { size = { 8, 8 }, channels = 1 }))
      local own = model:bits_per_dim(test, { seed = 0, condition = model.condition })
      assert.is_true(math.abs(own - cmd_bpd) <= 1e-5, string.format("%.7f vs %.7f", own, cmd_bpd))

      code, stdout, stderr = glow_cmd(string.format("sample %s %s/s.png --model %s -n 4", ckpt, out, file), tmp)
      assert.equal(0, code, stderr)
      assert.is_true(H.size(out .. "/s.png") > 0)

      -- encode / decode: the latents of pixel centres decode back to them
      code, stdout, stderr = glow_cmd(string.format("encode %s %s %s/z.safetensors --model %s --limit 4 --no-noise",
        ckpt, data, out, file), tmp)
      assert.equal(0, code, stderr)
      local t = assert(glow.checkpoint.read(out .. "/z.safetensors"))
      local zs = {}
      for i = 1, 8 do zs[i] = t["z" .. i] end
      local x = test:batch({ 1, 2, 3, 4 }, { n_bits = 8, seed = 0, noise = false })
      local back = model:decode(zs, t.cond)
      assert.is_true(back:max_abs_diff(x) <= 1e-4, tostring(back:max_abs_diff(x)))
      code, stdout, stderr = glow_cmd(string.format("decode %s %s/z.safetensors %s/d.png --model %s", ckpt, out, out,
        file), tmp)
      assert.equal(0, code, stderr)

      code, stdout, stderr = glow_cmd(string.format("info %s --model %s", ckpt, file), tmp)
      assert.equal(0, code, stderr)
      assert.matches("model file   " .. name .. "%.lua %(sha256 " .. string.rep("%x", 64) .. "%)", stdout)

      -- without --model: one line naming the recorded file
      code, stdout, stderr = glow_cmd(string.format("eval %s %s", ckpt, data), tmp)
      assert.equal(1, code)
      assert.matches("holds a model built by the model file " .. name .. ".lua (sha256 ", stderr, 1, true)
      assert.is_true(one_line(stderr), stderr)
    end)
  end

  it("refuses a model file that changed since the checkpoint, in one line, unless told", function()
    local dir = tmp .. "/copy"
    H.mkdir(dir)
    assert(os.execute(string.format("cp examples/realnvp.lua examples/common.lua '%s/'", dir)))
    local out = tmp .. "/changed"
    local code, _, stderr = glow_cmd(string.format("train --data %s --model %s/realnvp.lua --model-option width=4 "
      .. "--max-steps 2 --warmup 1 --batch 8 --no-progress --out %s", data, dir, out), tmp)
    assert.equal(0, code, stderr)
    local f = assert(io.open(dir .. "/realnvp.lua", "a"))
    f:write("-- an edit\n")
    f:close()
    local ckpt = out .. "/checkpoint.safetensors"
    code, _, stderr = glow_cmd(string.format("info %s --model %s/realnvp.lua", ckpt, dir), tmp)
    assert.equal(1, code)
    assert.matches("realnvp.lua has changed since " .. ckpt, stderr, 1, true)
    assert.is_true(one_line(stderr), stderr)
    code, _, stderr = glow_cmd(string.format("info %s --model %s/realnvp.lua --model-changed-ok", ckpt, dir), tmp)
    assert.equal(0, code, stderr)
    -- and glow.load says the same
    local m, err = glow.load(ckpt, { model = dir .. "/realnvp.lua" })
    assert.is_nil(m)
    assert.matches("has changed since", err, 1, true)
  end)

  it("refuses unknown model options and glow.Glow's options with --model, before any work", function()
    local code, stdout, stderr = glow_cmd(string.format("train --data %s --model examples/realnvp.lua "
      .. "--model-option depth=3 --out %s/x", data, tmp), tmp)
    assert.equal(2, code)
    assert.matches("has no option 'depth' (it has: width)", stderr, 1, true)
    assert.equal("", stdout)
    code, _, stderr = glow_cmd(string.format("train --data %s --model examples/realnvp.lua --width 8 --out %s/x",
      data, tmp), tmp)
    assert.equal(2, code)
    assert.matches("option --width belongs to glow.Glow", stderr, 1, true)
    code, _, stderr = glow_cmd(string.format("train --data %s --model examples/realnvp.lua "
      .. "--model-option width=zero --out %s/x", data, tmp), tmp)
    assert.equal(2, code)
    assert.matches("needs an integer", stderr, 1, true)
  end)

  it("runs no code from a checkpoint: a model file's checkpoint loads only with the file given", function()
    local m, err = glow.load(tmp .. "/realnvp/checkpoint.safetensors")
    assert.is_nil(m)
    assert.matches("give that file with --model FILE", err, 1, true)
  end)
end)

describe("runs through the glow command", function()
  local tmp, data
  local TINY = "--levels 1 --depth 2 --width 8 --warmup 5 --batch 8 --no-progress"
  setup(function()
    tmp = H.tmpdir()
    data = tmp .. "/data"
    make_folder(data, 128, 16)
  end)
  teardown(function() H.rmdir(tmp) end)

  it("stops on SIGINT after a step with a checkpoint and exit 130; resumed from it alone, it ends bitwise equal "
    .. "to a run left alone, with each step logged once", function()
    local opts = string.format("--data %s %s --epochs 40", data, TINY)
    local a, b = tmp .. "/left-alone", tmp .. "/interrupted"
    local code, _, stderr = glow_cmd(string.format("train %s --out %s", opts, a), tmp)
    assert.equal(0, code, stderr)
    -- the run in the background; SIGINT once its log has 200 lines (of 640 steps)
    local script = string.format([[
cd %q && export LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='%s/?.so;;'
lua5.4 lua/bin/glow train %s --out %s >%s/b.out 2>%s/b.err &
pid=$!
i=0
while [ "$(wc -l < %s/log.csv 2>/dev/null || echo 0)" -lt 200 ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done
kill -INT $pid
wait $pid
echo "rc=$?"
]], H.root, os.getenv("GLOW_BUILD") or (H.root .. "build"), opts, b, tmp, tmp, b)
    H.write(tmp .. "/interrupt.sh", script)
    local p = io.popen("sh " .. tmp .. "/interrupt.sh")
    local res = p:read("a")
    p:close()
    assert.matches("rc=130", res, 1, true)
    local err = H.read(tmp .. "/b.err")
    assert.matches("^glow train: SIGINT after step %d+; wrote " .. b:gsub("%p", "%%%0")
      .. "/checkpoint.safetensors; resume with: glow train %-%-resume ", err)
    assert.is_true(one_line(err), err)
    local mid = assert(glow.load(b .. "/checkpoint.safetensors"))
    local stopped = mid.checkpoint.trainer.step
    assert.is_true(stopped >= 150 and stopped < 640, tostring(stopped))

    -- the printed command, as printed
    local resume_cmd = err:match("resume with: glow (train .-)\n")
    code, _, stderr = glow_cmd(resume_cmd, tmp)
    assert.equal(0, code, stderr)
    assert.equal(0, differing(assert(glow.load(a .. "/checkpoint.safetensors")),
      assert(glow.load(b .. "/checkpoint.safetensors"))))
    -- the logs: the same steps once each, with the same losses
    local function steps(path)
      local rows = {}
      for line in io.lines(path) do
        local s, bpd = line:match("^(%d+),%d+,%d+,([^,]+),")
        if s then rows[#rows + 1] = s .. ":" .. bpd end
      end
      return rows
    end
    local sa, sb = steps(a .. "/log.csv"), steps(b .. "/log.csv")
    assert.equal(640, #sa)
    assert.same(sa, sb)
  end)

  it("resumes a finished --max-steps run with zero steps, leaving the parameters bitwise equal", function()
    local out = tmp .. "/capped"
    local code, _, stderr = glow_cmd(string.format("train --data %s %s --max-steps 12 --out %s", data, TINY, out), tmp)
    assert.equal(0, code, stderr)
    local before = assert(glow.load(out .. "/checkpoint.safetensors"))
    local stdout
    code, stdout, stderr = glow_cmd(string.format("train --data %s %s --max-steps 12 --resume %s/checkpoint.safetensors",
      data, TINY, out), tmp)
    assert.equal(0, code, stderr)
    assert.matches("has finished its run (12 steps); nothing to train", stdout, 1, true)
    assert.matches("; 0 steps in", stdout, 1, true)
    local after = assert(glow.load(out .. "/checkpoint.safetensors"))
    assert.equal(0, differing(before, after))
    assert.equal(12, after.checkpoint.trainer.step)
  end)

  it("extends a finished run with the command glow info prints, as printed", function()
    local out = tmp .. "/short"
    local code, _, stderr = glow_cmd(string.format("train --data %s %s --epochs 1 --out %s", data, TINY, out), tmp)
    assert.equal(0, code, stderr)
    local stdout
    code, stdout, stderr = glow_cmd("info " .. out .. "/checkpoint.safetensors", tmp)
    assert.equal(0, code, stderr)
    local extend = stdout:match("extend it: glow (train [^)]+)%)")
    assert.is_string(extend, stdout)
    code, stdout, stderr = glow_cmd(extend, tmp)
    assert.equal(0, code, stderr)
    assert.matches("epoch 2/2 done: train bits/dim [%d.]+  test bits/dim", stdout)
    local m = assert(glow.load(out .. "/checkpoint.safetensors"))
    assert.equal(32, m.checkpoint.trainer.step)
    -- the data came from the checkpoint: the same 128 training images
    assert.matches("glow: 128 train / 16 test images", stdout, 1, true)
  end)
end)
