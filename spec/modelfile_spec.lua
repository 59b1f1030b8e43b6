local H = require "spec.helper"

local glow = H.glow

local glow_cmd, one_line = H.glow_cmd, H.one_line


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

describe("model files through the glow command", function()
  local tmp, data
  setup(function()
    tmp = H.tmpdir()
    data = tmp .. "/data"
    H.class_folder(data, 32, 16)
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
      local _
      local code, stdout, stderr = glow_cmd(string.format("train --data %s --model %s %s --max-steps 3 --warmup 1 "
        .. "--batch 8 --no-progress --out %s", data, file, mopts, out), tmp)
      assert.equal(0, code, stderr)
      assert.matches("test bits/dim: [%d.]+ %(16 test images%)", stdout)
      local ckpt = out .. "/checkpoint.safetensors"

      -- eval: the command's per-image figures against the library's own
      -- evaluation of the same checkpoint (Polyak average, fixed noise)
      code, _, stderr = glow_cmd(string.format("eval %s %s --model %s --csv %s/per.csv", ckpt, data, file, out),
        tmp)
      assert.equal(0, code, stderr)
      local cmd_bpd = mean(csv_bpd(out .. "/per.csv"))
      local cwd = H.root
      local model = assert(glow.load(ckpt, { model = cwd .. file, average = true }))
      local test = assert(glow.data.images(data .. "/test", { size = { 8, 8 }, channels = 1 }))
      local own = model:bits_per_dim(test, { seed = 0, condition = model.condition })
      assert.is_true(math.abs(own - cmd_bpd) <= 1e-5, string.format("%.7f vs %.7f", own, cmd_bpd))

      code, _, stderr = glow_cmd(string.format("sample %s %s/s.png --model %s -n 4", ckpt, out, file), tmp)
      assert.equal(0, code, stderr)
      assert.is_true(H.size(out .. "/s.png") > 0)

      -- encode / decode: the latents of pixel centres decode back to them
      code, _, stderr = glow_cmd(string.format("encode %s %s %s/z.safetensors --model %s --limit 4 --no-noise",
        ckpt, data, out, file), tmp)
      assert.equal(0, code, stderr)
      local t = assert(glow.checkpoint.read(out .. "/z.safetensors"))
      local zs = {}
      for i = 1, 8 do zs[i] = t["z" .. i] end
      local x = test:batch({ 1, 2, 3, 4 }, { n_bits = 8, seed = 0, noise = false })
      local back = model:decode(zs, t.cond)
      assert.is_true(back:max_abs_diff(x) <= 1e-4, tostring(back:max_abs_diff(x)))
      code, _, stderr = glow_cmd(string.format("decode %s %s/z.safetensors %s/d.png --model %s", ckpt, out, out,
        file), tmp)
      assert.equal(0, code, stderr)

      code, stdout, stderr = glow_cmd(string.format("info %s --model %s", ckpt, file), tmp)
      assert.equal(0, code, stderr)
      assert.matches("model file   " .. name .. "%.lua %(sha256 " .. string.rep("%x", 64) .. "%)", stdout)

      -- without --model: one line naming the recorded file
      code, _, stderr = glow_cmd(string.format("eval %s %s", ckpt, data), tmp)
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
    local _
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

