local H = require "spec.helper"

local glow = H.glow

--- Run examples/<script> with args (a string): exit code, stdout, stderr.
local function run(script, args, tmp) return H.run_lua("examples/" .. script .. " " .. args, tmp) end

local size = H.size

--- Every file in dir is there and not empty.
local function assert_files(dir, files)
  for _, name in ipairs(files) do
    assert.is_true(size(dir .. "/" .. name) > 0, "missing or empty: " .. dir .. "/" .. name)
  end
end

--- A failure: exit code 1 and one line on stderr that holds msg and no traceback.
local function assert_fails(code, stderr, msg)
  assert.are.equal(1, code, stderr)
  assert.matches(msg, stderr, 1, true)
  assert.is_nil(stderr:find("stack traceback", 1, true), stderr)
  assert.is_nil(stderr:find("\n.", 1), "more than one line: " .. stderr)
end

describe("examples/custom_coupling.lua", function()
  it("builds a model around a coupling network composed in Lua, inverts it and gets gradients", function()
    local cmd = string.format("cd %q && LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='%s/?.so;;' "
      .. "lua5.4 examples/custom_coupling.lua 2>&1", H.root, os.getenv("GLOW_BUILD") or (H.root .. "build"))
    local p = io.popen(cmd)
    local out = p:read("a")
    assert(p:close(), out)
    assert.matches("custom coupling: ok", out, 1, true)
    local err = tonumber(out:match("max abs error: (%S+)"))
    -- the images are in [-0.5, 0.5): O(1), an absolute bound
    assert.is_true(err < 1e-4)
  end)
end)

describe("examples/custom_multiscale.lua", function()
  it("composes levels and a mixture prior glow.Glow cannot express, inverts it and trains with --quick", function()
    local tmp = H.tmpdir()
    local code, out, err = run("custom_multiscale.lua", "--quick --out " .. tmp .. "/cms", tmp)
    assert.are.equal(0, code, err)
    assert.matches("custom multiscale: ok", out, 1, true)
    -- the script fails by itself when the check, the inverse or the loss goes wrong; the figures it read:
    local worst = tonumber(out:match("worst relative error (%S+)"))
    assert.is_true(worst < 1e-2)
    local inv = tonumber(out:match("max abs error: (%S+)"))
    assert.is_true(inv < 1e-3) -- images in [-0.5, 0.5): an absolute bound
    local first, last = out:match("first %d+ steps (%S+), last %d+ steps (%S+)")
    assert.is_true(tonumber(last) < tonumber(first))
    assert_files(tmp .. "/cms", { "samples.png", "summary.txt" })
    H.rmdir(tmp)
  end)
end)

describe("the prototype architectures (ops and autograd, no C)", function()
  for _, case in ipairs {
    { "realnvp", "samples.png" }, { "flowpp", "samples.png" }, { "superres", "superres.png" },
  } do
    local name, picture = case[1], case[2]
    it("examples/" .. name .. ".lua checks its twin and trains with --quick", function()
      local tmp = H.tmpdir()
      local code, out, err = run(name .. ".lua", "--quick --out " .. tmp .. "/" .. name, tmp)
      assert.are.equal(0, code, err)
      assert.matches(name .. ": ok", out, 1, true)
      -- the twin's checks (the script fails by itself when one does not hold)
      assert.is_true(tonumber(out:match("decode%(encode%(x%)%) max abs error (%S+);")) <= 1e-4)
      -- the log-determinant within the brute force's own error estimate,
      -- which resolves at least 1e-3 + 1e-3 |log-det| (glow.check)
      local ld, brute, ld_err = out:match("log%-det (%S+), brute%-force Jacobian (%S+) %+%- (%S+);")
      ld, brute, ld_err = tonumber(ld), tonumber(brute), tonumber(ld_err)
      assert.is_true(ld_err <= 1e-3 + 1e-3 * math.abs(ld), out)
      assert.close(brute, ld, 0, ld_err + 1e-6 * math.abs(ld))
      assert.is_true(tonumber(out:match("within (%S+) of finite differences")) <= 1e-2)
      assert.is_truthy(out:match("test bits/dim[^\n]-: (%d+%.%d+)"))
      assert_files(tmp .. "/" .. name, { picture, "summary.txt" })
      H.rmdir(tmp)
    end)
  end
end)

describe("the experiment scripts", function()
  -- one --quick conditional run serves as the conditional checkpoint of the
  -- others; an unconditional checkpoint and an attribute folder are made here
  local tmp, cond, uncond, attr
  local cond_code, cond_out, cond_err

  lazy_setup(function()
    tmp = H.tmpdir()
    cond = tmp .. "/conditional"
    cond_code, cond_out, cond_err = run("conditional.lua", "--quick --out " .. cond, tmp)
    local m = glow.Glow { shape = { 28, 28, 1 }, levels = 2, depth = 1, width = 8 }
    m:initialize(H.data({ 4, 28, 28, 1 }, 1))
    uncond = tmp .. "/unconditional.safetensors"
    assert(m:save(uncond))
    attr = tmp .. "/attr"
    for k, sub in ipairs { "with", "without" } do
      assert(os.execute("mkdir -p '" .. attr .. "/" .. sub .. "'"))
      for i = 1, 3 do
        assert(glow.image.save_grid(string.format("%s/%s/%d.png", attr, sub, i), H.data({ 1, 28, 28, 1 }, 10 * k + i)))
      end
    end
  end)

  lazy_teardown(function() H.rmdir(tmp) end)

  describe("conditional.lua", function()
    it("trains a tiny class-conditional model with --quick and reports bits/dim and accuracies", function()
      assert.are.equal(0, cond_code, cond_out .. cond_err)
      assert_files(cond, { "samples.png", "summary.txt", "checkpoint.safetensors", "log.csv" })
      assert.matches("test bits/dim: %d", cond_out)
      assert.matches("test accuracy of the classification head: [%d.]+", cond_out)
      assert.matches("accuracy on the model's samples %(temperature 0.75", cond_out)
      local model = assert(glow.load(cond .. "/checkpoint.safetensors"))
      assert.are.equal(10, model.config.classes)
    end)

    it("evaluates a trained checkpoint with --checkpoint", function()
      local code, out, err = run("conditional.lua", string.format("--quick --checkpoint %s/checkpoint.safetensors "
        .. "--out %s/cond2", cond, tmp), tmp)
      assert.are.equal(0, code, out .. err)
      assert_files(tmp .. "/cond2", { "samples.png", "summary.txt" })
      assert.matches("Polyak", out, 1, true)
    end)

    it("refuses an unconditional checkpoint", function()
      local code, _, err = run("conditional.lua", "--checkpoint " .. uncond .. " --out " .. tmp .. "/x", tmp)
      assert_fails(code, err, "holds an unconditional model")
    end)
  end)

  describe("temperature.lua", function()
    it("trains its own tiny model under --quick and writes a grid of one class", function()
      local code, out, err = run("temperature.lua", "--quick --class 3 --out " .. tmp .. "/temp", tmp)
      assert.are.equal(0, code, out .. err)
      assert_files(tmp .. "/temp", { "temperature.png", "summary.txt", "quick-checkpoint.safetensors" })
      assert.matches("columns at temperatures 0, 0.25, 0.6, 0.7, 0.8, 0.9, 1.0, class 3", out, 1, true)
    end)

    it("refuses --class with an unconditional checkpoint", function()
      local code, _, err = run("temperature.lua", "--class 2 --checkpoint " .. uncond .. " --out " .. tmp .. "/x", tmp)
      assert_fails(code, err, "--class needs a class-conditional one")
    end)

    it("asks for a checkpoint without --quick", function()
      local code, _, err = run("temperature.lua", "--out " .. tmp .. "/x", tmp)
      assert_fails(code, err, "--checkpoint PATH is required")
    end)
  end)

  describe("interpolate.lua", function()
    it("interpolates pairs of one class with a conditional checkpoint and round-trips the ends", function()
      local code, out, err = run("interpolate.lua", string.format("--quick --class 7 --checkpoint "
        .. "%s/checkpoint.safetensors --out %s/interp", cond, tmp), tmp)
      assert.are.equal(0, code, out .. err)
      assert_files(tmp .. "/interp", { "interpolate.png", "summary.txt" })
      assert.matches("labels 7-7, 7-7", out, 1, true)
      -- real images in [-0.5, 0.5) through encode and decode: O(1), an absolute bound
      assert.is_true(tonumber(out:match("largest difference (%S+)")) < 1e-4, out)
    end)

    it("trains its own tiny model under --quick", function()
      local code, out, err = run("interpolate.lua", "--quick --pairs 1 --steps 2 --out " .. tmp .. "/interp2", tmp)
      assert.are.equal(0, code, out .. err)
      assert_files(tmp .. "/interp2", { "interpolate.png", "summary.txt" })
    end)
  end)

  describe("manipulate.lua", function()
    it("walks test images along a built-in attribute with its own unconditional model", function()
      local code, out, err = run("manipulate.lua", "--quick --out " .. tmp .. "/manip", tmp)
      assert.are.equal(0, code, out .. err)
      assert_files(tmp .. "/manip", { "manipulate-footwear.png", "summary.txt" })
      assert.matches("columns at multiples -1.00, -0.50, original, 0.50, 1.00", out, 1, true)
    end)

    it("takes an attribute from a folder of with/ and without/ images", function()
      local code, out, err = run("manipulate.lua", string.format("--quick --checkpoint %s/checkpoint.safetensors "
        .. "--attribute-dir %s --images %s/with --rows 2 --out %s/manip2", cond, attr, attr, tmp), tmp)
      assert.are.equal(0, code, out .. err)
      assert_files(tmp .. "/manip2", { "manipulate-attr.png", "summary.txt" })
      assert.matches("mean latent of 3 images with it minus that of 3 without", out, 1, true)
    end)

    it("refuses a folder without with/ and without/", function()
      local code, _, err = run("manipulate.lua", string.format("--quick --checkpoint %s --attribute-dir %s/with "
        .. "--out %s/x", uncond, attr, tmp), tmp)
      assert_fails(code, err, "must hold exactly two subfolders")
    end)
  end)

  describe("ablation.lua", function()
    it("trains the six variants briefly and writes the table, the curves and the plot", function()
      local code, out, err = run("ablation.lua", "--quick --out " .. tmp .. "/abl", tmp)
      assert.are.equal(0, code, out .. err)
      local files = { "ablation.md", "curves.dat", "plot.gp", "summary.txt", "log-invconv_lu-affine.csv" }
      if os.execute("command -v gnuplot >/dev/null 2>&1") then
        files[#files + 1] = "ablation.png"
      else
        assert.matches("apt-get install gnuplot-nox", err, 1, true)
      end
      assert_files(tmp .. "/abl", files)
      local f = assert(io.open(tmp .. "/abl/ablation.md"))
      local md = f:read("a")
      f:close()
      for _, p in ipairs { "reverse", "shuffle", "invconv_lu" } do
        for _, c in ipairs { "additive", "affine" } do
          assert.matches("| " .. p .. " | " .. c .. " | %d+%.%d+ |", md)
        end
      end
    end)
  end)

  describe("bad input", function()
    --- A usage error: exit code 2 and one line on stderr that holds msg.
    local function assert_usage(code, stderr, msg)
      assert.are.equal(2, code, stderr)
      assert.matches(msg, stderr, 1, true)
      assert.is_nil(stderr:find("\n.", 1), "more than one line: " .. stderr)
    end

    for _, script in ipairs { "conditional.lua", "temperature.lua", "interpolate.lua", "manipulate.lua",
      "ablation.lua", "realnvp.lua", "flowpp.lua", "superres.lua", "custom_multiscale.lua" } do
      it(script .. " refuses an unknown option, and has --help", function()
        local code, _, err = run(script, "--quick --no-such-option 1", tmp)
        assert_usage(code, err, "examples/" .. script .. ": unknown option '--no-such-option'")
        local c2, out = run(script, "--help", tmp)
        assert.are.equal(0, c2)
        assert.matches("Usage: examples/" .. script, out, 1, true)
        assert.matches("--quick", out, 1, true)
      end)
    end

    for _, script in ipairs { "conditional.lua", "temperature.lua", "interpolate.lua", "manipulate.lua" } do
      it(script .. " reports a missing checkpoint", function()
        local code, _, err = run(script, "--checkpoint " .. tmp .. "/none.safetensors --out " .. tmp .. "/x", tmp)
        assert_fails(code, err, "none.safetensors")
      end)
    end

    for _, case in ipairs {
      { "an option without its value", "temperature.lua", "--quick --rows", "option '--rows' requires an argument" },
      { "a value of the wrong kind", "ablation.lua", "--quick --eval-every x",
        "option --eval-every needs an integer, got 'x'" },
      { "a value not among the choices", "manipulate.lua", "--quick --attribute hats",
        "option --attribute must be one of footwear, sleeves, top" },
      { "an option given twice", "temperature.lua", "--quick --rows 2 --rows 3",
        "option '--rows' must be used at most 1 time" },
      { "a flag given a value", "temperature.lua", "--quick=yes", "option '--quick' does not take arguments" },
      { "an integer below its minimum", "temperature.lua", "--quick --rows 0", "option --rows must be >= 1, got 0" },
      { "a number below its minimum", "conditional.lua", "--quick --class-weight -1",
        "option --class-weight must be >= 0, got -1" },
    } do
      it("reports " .. case[1] .. " with exit code 2", function()
        local code, _, err = run(case[2], case[3], tmp)
        assert_usage(code, err, "examples/" .. case[2] .. ": " .. case[4])
      end)
    end

    it("reports an output folder that cannot be made", function()
      H.write(tmp .. "/file", "a file, not a folder")
      local code, _, err = run("temperature.lua", string.format("--quick --out %q", tmp .. "/file/out"), tmp)
      assert_fails(code, err, "examples/temperature.lua: output folder " .. tmp .. "/file/out: cannot make the folder "
        .. tmp .. "/file: a file of that name is in the way")
    end)

    it("refuses a checkpoint of a model that was never initialized", function()
      local m = glow.Glow { shape = { 8, 8, 1 }, levels = 2, depth = 1, width = 8 }
      assert(m:save(tmp .. "/fresh.safetensors"))
      local code, _, err = run("temperature.lua", string.format("--checkpoint %q --out %q",
        tmp .. "/fresh.safetensors", tmp .. "/out"), tmp)
      assert_fails(code, err, tmp .. "/fresh.safetensors holds a model that was never initialized or trained")
    end)

    it("refuses data whose image size does not fit the checkpoint's model", function()
      -- a trained 8x8 model, and a Fashion-MNIST test split of 4x4 images
      local m = glow.Glow { shape = { 8, 8, 1 }, levels = 2, depth = 1, width = 8 }
      m:initialize(H.data({ 4, 8, 8, 1 }, 1))
      assert(m:save(tmp .. "/m.safetensors"))
      local img = { string.pack(">I4I4I4I4", 0x803, 2, 4, 4), ("\100"):rep(32) }
      H.write(tmp .. "/t10k-images-idx3-ubyte", table.concat(img))
      H.write(tmp .. "/t10k-labels-idx1-ubyte", string.pack(">I4I4", 0x801, 2) .. "\1\2")
      local code, _, err = run("interpolate.lua", string.format("--checkpoint %q --data-dir %q --out %q",
        tmp .. "/m.safetensors", tmp, tmp .. "/out"), tmp)
      assert_fails(code, err, "Fashion-MNIST holds 4x4x1 images; the model takes 8x8x1")
    end)
  end)
end)

describe("examples/train.lua", function()
  local tmp
  before_each(function() tmp = H.tmpdir() end)
  after_each(function() H.rmdir(tmp) end)

  it("trains a few steps on Fashion-MNIST and writes its files", function()
    local code, out = run("train.lua", string.format("--max-steps 3 --warmup 1 --eval-limit 64 --no-progress "
      .. "--depth 1 --width 8 --out %q", tmp), tmp)
    assert.equal(0, code)
    assert.matches("wrote " .. tmp .. "/samples.png", out, 1, true)
    assert.is_not_nil(glow.load(tmp .. "/checkpoint.safetensors"))
  end)

  it("refuses a run shorter than its warmup with one line and exit code 2, before any work", function()
    local code, _, stderr = run("train.lua", string.format("--max-steps 5 --depth 1 --width 8 --out %q", tmp .. "/o"),
      tmp)
    assert.equal(2, code)
    assert.equal("glow train: --max-steps 5 leaves no steps after the 200-step warmup, which the wsd schedule decays "
      .. "over; lower --warmup or use --schedule constant (see glow train --help)\n", stderr)
    assert.is_nil(io.open(tmp .. "/o"))
  end)

  it("ends with one line and exit code 1 when the output folder cannot be made", function()
    H.write(tmp .. "/file", "a file, not a folder")
    local code, _, stderr = run("train.lua", string.format("--max-steps 3 --warmup 1 --out %q", tmp .. "/file/out"),
      tmp)
    assert_fails(code, stderr, "glow train: cannot make the folder " .. tmp
      .. "/file: a file of that name is in the way")
  end)

  it("refuses an unknown option with exit code 2", function()
    local code, _, stderr = run("train.lua", "--epoch 1", tmp)
    assert.equal(2, code)
    assert.matches("glow train: unknown option '--epoch'", stderr, 1, true)
  end)
end)
