local H = require "spec.helper"

local glow = H.glow

--- Run lua/bin/glow with args (a string): exit code, stdout, stderr.
local function glow_cmd(args, tmp) return H.run_lua("lua/bin/glow " .. args, tmp) end

local size = H.size

local function png(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local sig = f:read(8)
  f:close()
  return sig == "\137PNG\r\n\26\n"
end

--- A folder DIR/train and DIR/test of 8x8 gray PNGs, classes (2) class
--- subfolders each (a bright bar at a class-dependent column over a faint
--- pattern).
local function make_folder(dir, n_train, n_test, classes)
  classes = classes or 2
  for split, n in pairs { train = n_train, test = n_test } do
    for k = 0, classes - 1 do
      local sub = string.format("%s/%s/class%d", dir, split, k)
      assert(os.execute("mkdir -p '" .. sub .. "'"))
      for i = 1, n // classes do
        local px = {}
        for r = 0, 7 do
          for c = 0, 7 do
            local v = (c == (2 + 3 * k) % 8) and 220 or 30 + ((r + c + i) % 5) * 12
            px[#px + 1] = (v + 0.5) / 256 - 0.5
          end
        end
        local x = glow.Tensor.from(px, { 1, 8, 8, 1 })
        assert(glow.image.save_grid(string.format("%s/%03d.png", sub, i), x, { cols = 1, padding = 0 }))
      end
    end
  end
end

describe("the glow command", function()
  local tmp, data, out
  local TINY = "--levels 2 --depth 1 --width 8 --batch 16 --warmup 1 --no-progress"

  setup(function()
    tmp = H.tmpdir()
    data = tmp .. "/data"
    out = tmp .. "/run"
    make_folder(data, 48, 16)
  end)
  teardown(function() H.rmdir(tmp) end)

  it("with no command prints the commands and exits 2; --help exits 0", function()
    local code, stdout = glow_cmd("", tmp)
    assert.equal(2, code)
    assert.matches("Usage: glow <command>", stdout, 1, true)
    for _, name in ipairs { "train", "eval", "sample", "encode", "decode", "info", "plot", "pack" } do
      assert.matches("   " .. name .. " ", stdout, 1, true)
      local c2, help = glow_cmd(name .. " --help", tmp)
      assert.equal(0, c2, name)
      assert.matches("Usage: glow " .. name, help, 1, true)
      -- readable: no line past 100 columns, no alias split over lines ("-n <n>," above "--n <n>"),
      -- no default said twice
      for line in help:gmatch("[^\n]+") do
        assert.is_true(#line <= 100, line)
        assert.is_nil(line:find("^%s+%-[%w-]+ <[^>]+>,$"), line)
        assert.is_nil(line:find("%[default:.*%[default:"), line)
      end
    end
    local _, help = glow_cmd("sample --help", tmp)
    assert.matches("\n   %-n <n>%s+number of samples %[default: 64%]\n", help)
    assert.matches("\n   -t, --temperature <number>\n", help, 1, true)
    assert.matches("\n   %-y <labels>%s+class label", help)
  end)

  it("trains on a folder, then evaluates, samples, encodes, decodes, inspects and plots", function()
    local code, stdout, stderr = glow_cmd(string.format("train --data %s --epochs 1 --out %s %s", data, out, TINY),
      tmp)
    assert.equal(0, code, stderr)
    assert.matches("glow: 48 train / 16 test images 8x8x1", stdout, 1, true)
    assert.matches("epoch 1: test bits/dim [%d.]+ %(train [%d.]+%)", stdout)
    assert.matches("test bits/dim: [%d.]+ %(16 test images%)", stdout)
    for _, f in ipairs { "checkpoint.safetensors", "log.csv", "samples.png", "curve.png" } do
      assert.is_true(size(out .. "/" .. f) > 0, f)
    end
    local ckpt = out .. "/checkpoint.safetensors"

    -- eval: the set's figure, one CSV row per image with its path, a histogram of two sets
    code, stdout, stderr = glow_cmd(string.format("eval %s %s --csv %s/per.csv --histogram %s/h.png --against %s/train",
      ckpt, data, tmp, tmp, data), tmp)
    assert.equal(0, code, stderr)
    local mean = tonumber(stdout:match(data:gsub("%p", "%%%0") .. ": ([%d.]+) bits/dim %(mean of 16 images%)"))
    assert.is_number(mean)
    local rows = {}
    for line in H.read(tmp .. "/per.csv"):gmatch("[^\n]+") do rows[#rows + 1] = line end
    assert.equal("set,index,path,label,bpd", rows[1])
    assert.equal(1 + 16 + 48, #rows)
    assert.matches("^" .. data:gsub("%p", "%%%0") .. ",1,[^,]*class0/001%.png,0,[%d.]+$", rows[2])
    local sum = 0
    for i = 2, 17 do sum = sum + tonumber(rows[i]:match("([%d.]+)$")) end
    assert.close(mean, sum / 16, 1e-4)
    assert.is_true(png(tmp .. "/h.png"))
    -- the same figure as the library gives
    local m = assert(glow.load(ckpt, { average = true }))
    local test = assert(glow.data.images(data .. "/test"))
    assert.close(m:bits_per_dim(test), mean, 1e-4)
    -- the AUROC of telling the training images from the test images by bits/dim: the rank statistic
    -- over the same per-image figures
    local per_image = require("glow.cli.eval").per_image
    local o = { batch = 256, seed = 0 }
    local auroc = require("glow.stats").auroc(per_image(m, test, o),
      per_image(m, assert(glow.data.images(data .. "/train")), o))
    assert.matches(string.format("\nAUROC (%s/train against %s): %.4f\n", data, data, auroc), stdout, 1, true)

    code, stdout, stderr = glow_cmd(string.format("sample %s %s/s.png -n 6 -t 0.5 --cols 3", ckpt, tmp), tmp)
    assert.equal(0, code, stderr)
    assert.matches("wrote " .. tmp .. "/s.png: 6 samples at temperature 0.5", stdout, 1, true)
    assert.is_true(png(tmp .. "/s.png"))
    assert.same({ 1, 17, 26, 1 }, glow.image.read_png(tmp .. "/s.png"):shape())
    -- --scale 3: each 8x8 image as 24x24, the 1-pixel padding as it was
    code, stdout, stderr = glow_cmd(string.format("sample %s %s/s3.png -n 6 --cols 3 --scale 3", ckpt, tmp), tmp)
    assert.equal(0, code, stderr)
    assert.matches("wrote " .. tmp .. "/s3.png: 6 samples", stdout, 1, true)
    assert.same({ 1, 49, 74, 1 }, glow.image.read_png(tmp .. "/s3.png"):shape())
    -- the format the name says: JPEG for .jpg and .jpeg
    code, stdout, stderr = glow_cmd(string.format("sample %s %s/s.jpg -n 6 --cols 3", ckpt, tmp), tmp)
    assert.equal(0, code, stderr)
    assert.matches("wrote " .. tmp .. "/s.jpg: 6 samples", stdout, 1, true)
    assert.equal("\255\216\255", H.read(tmp .. "/s.jpg"):sub(1, 3))

    code, stdout, stderr = glow_cmd(string.format("encode %s %s %s/z.safetensors --limit 5", ckpt, data, tmp), tmp)
    assert.equal(0, code, stderr)
    assert.matches("wrote " .. tmp .. "/z.safetensors: 2 latents (z1 5x4x4x2, z2 5x2x2x8)", stdout, 1, true)
    local z = assert(glow.checkpoint.read(tmp .. "/z.safetensors"))
    assert.same({ 5, 4, 4, 2 }, z.z1:shape())
    assert.same({ 5, 2, 2, 8 }, z.z2:shape())
    assert.same({ 5 }, z.y:shape())
    code, stdout, stderr = glow_cmd(string.format("decode %s %s/z.safetensors %s/d.png --cols 5", ckpt, tmp, tmp), tmp)
    assert.equal(0, code, stderr)
    assert.matches("wrote " .. tmp .. "/d.png: 5 images", stdout, 1, true)
    code, stdout, stderr = glow_cmd(string.format("decode %s %s/z.safetensors %s/d2.png --cols 5 --scale 2", ckpt, tmp,
      tmp), tmp)
    assert.equal(0, code, stderr)
    assert.matches("wrote " .. tmp .. "/d2.png: 5 images", stdout, 1, true)
    assert.same({ 1, 16, 84, 1 }, glow.image.read_png(tmp .. "/d2.png"):shape())
    code, stdout, stderr = glow_cmd(string.format("decode %s %s/z.safetensors %s/d.jpeg", ckpt, tmp, tmp), tmp)
    assert.equal(0, code, stderr)
    assert.matches("wrote " .. tmp .. "/d.jpeg: 5 images", stdout, 1, true)
    assert.equal("\255\216\255", H.read(tmp .. "/d.jpeg"):sub(1, 3))
    -- decode(encode(x)) gives the images back: compare with the library's decode
    local x = m:decode({ z.z1, z.z2 })
    local idx = { 1, 2, 3, 4, 5 }
    local x0 = test:batch(idx, { noise = true, seed = 0 })
    assert.is_true(x:max_abs_diff(x0) < 1e-3)

    code, stdout, stderr = glow_cmd("info " .. ckpt, tmp)
    assert.equal(0, code, stderr)
    assert.matches("shape        8x8x1", stdout, 1, true)
    assert.matches("parameters   %d+ %(%d+ tensors%)", stdout)
    assert.matches("finished: 1 epochs, 3 steps", stdout, 1, true)
    assert.matches("Polyak average: yes", stdout, 1, true)

    -- pack the test folder once; evaluating the pack gives the folder's figure
    code, stdout, stderr = glow_cmd(string.format("pack %s/test %s/t.glowpack", data, tmp), tmp)
    assert.equal(0, code, stderr)
    assert.matches("wrote " .. tmp .. "/t.glowpack: 16 images of 8x8x1, 2 classes", stdout, 1, true)
    code, stdout, stderr = glow_cmd(string.format("eval %s %s/t.glowpack", ckpt, tmp), tmp)
    assert.equal(0, code, stderr)
    assert.close(mean, tonumber(stdout:match("t%.glowpack: ([%d.]+) bits/dim %(mean of 16 images%)")), 1e-6)

    code, stdout, stderr = glow_cmd(string.format("plot %s/log.csv %s/c.png", out, tmp), tmp)
    assert.equal(0, code, stderr)
    assert.equal("wrote " .. tmp .. "/c.png\n", stdout)
    assert.is_true(png(tmp .. "/c.png"))
    code, stdout, stderr = glow_cmd(string.format("plot %s/log.csv %s/c2.png --range 1:20 --logy --title run", out,
      tmp), tmp)
    assert.equal(0, code, stderr)
    assert.equal("wrote " .. tmp .. "/c2.png\n", stdout)
    assert.is_true(png(tmp .. "/c2.png"))
  end)

  it("rewrites samples.png and curve.png while it trains (--sample-every); the run ends bitwise as without", function()
    -- a stand-in gnuplot first on PATH: for each curve, the steps drawn and whether samples.png is there
    local bin, calls = tmp .. "/bin", tmp .. "/gnuplot-calls.txt"
    assert(os.execute("mkdir -p '" .. bin .. "'"))
    H.write(bin .. "/gnuplot", "#!/bin/sh\nif [ \"$1\" = -e ]; then echo '   png  PNG images using libgd'; exit 0; fi\n"
      .. "n=$(wc -l < \"$(dirname \"$1\")/train.dat\")\n"
      .. "if [ -f \"$OUT/samples.png\" ]; then s=samples; else s=none; fi\n"
      .. "echo \"$n $s\" >> '" .. calls .. "'\nprintf '\\211PNG\\r\\n\\032\\n'\n")
    assert(os.execute("chmod +x '" .. bin .. "/gnuplot'"))
    local function train(dir, extra)
      local cmd = string.format("cd %q && OUT=%q PATH=%q:\"$PATH\" LUA_PATH='lua/?.lua;lua/?/init.lua;;' "
        .. "LUA_CPATH='%s/?.so;;' lua5.4 lua/bin/glow train --data %s --epochs 1 --levels 2 --depth 1 --width 8 "
        .. "--batch 8 --warmup 1 --checkpoint-every 0 --no-progress --out %s %s 2>%q", H.root, dir, bin,
        os.getenv("GLOW_BUILD") or (H.root .. "build"), data, dir, extra, tmp .. "/stderr.txt")
      local p = io.popen(cmd)
      local stdout = p:read("a")
      local _, _, code = p:close()
      assert.equal(0, code, H.read(tmp .. "/stderr.txt"))
      return stdout
    end
    -- 48 images in batches of 8: 6 steps, the only checkpoint the last
    train(tmp .. "/plain", "")
    assert.equal("6 samples\n", H.read(calls)) -- drawn once, at the end
    os.remove(calls)
    local every = tmp .. "/every"
    train(every, "--sample-every 2")
    -- steps 2, 4, 6, then the end; samples.png was written before the first curve
    assert.equal("2 samples\n4 samples\n6 samples\n6 samples\n", H.read(calls))
    -- 8x8 images: each pixel 8x8 by default, 64 samples in rows of 8 with 1-pixel padding
    assert.same({ 1, 519, 519, 1 }, glow.image.read_png(every .. "/samples.png"):shape())
    -- sampling used its own seed and put the trained weights back: the same steps on the same data, bitwise
    for _, average in ipairs { false, true } do
      local a = assert(glow.load(tmp .. "/plain/checkpoint.safetensors", { average = average })):parameters()
      local b = assert(glow.load(every .. "/checkpoint.safetensors", { average = average })):parameters()
      assert.equal(#a, #b)
      for i, p in ipairs(a) do assert.tensor_equal(p.value, b[i].value) end
    end
    assert.equal(H.read(tmp .. "/plain/samples.png"), H.read(every .. "/samples.png"))
    -- --sample-scale sets the enlargement
    train(tmp .. "/scaled", "--sample-scale 2 --max-steps 2")
    assert.same({ 1, 135, 135, 1 }, glow.image.read_png(tmp .. "/scaled/samples.png"):shape())
  end)

  it("extends a finished run with --resume and more epochs; refuses a contradicting architecture", function()
    local dir = tmp .. "/ext"
    local code, _, stderr = glow_cmd(string.format("train --data %s --epochs 1 --out %s %s", data, dir, TINY), tmp)
    assert.equal(0, code, stderr)
    local ckpt = dir .. "/checkpoint.safetensors"
    local stdout
    -- the training options (batch, warmup, ...) come from the checkpoint; only the data is named again
    code, stdout, stderr = glow_cmd(string.format("train --data %s --resume %s --epochs 3 --out %s --no-progress",
      data, ckpt, dir), tmp)
    assert.equal(0, code, stderr)
    assert.matches("extending a finished run of 1 epochs to 3", stdout, 1, true)
    assert.matches("epoch 2: test bits/dim", stdout, 1, true)
    assert.matches("epoch 3: test bits/dim", stdout, 1, true)
    assert.equal(9, assert(glow.load(ckpt)).checkpoint.trainer.step)
    code, _, stderr = glow_cmd(string.format("train --data %s --resume %s --epochs 4 --width 32 --out %s", data,
      ckpt, dir), tmp)
    assert.equal(2, code)
    assert.equal("glow train: option --width 32 contradicts the checkpoint " .. ckpt .. ", which has width = 8 (the "
      .. "model comes from the checkpoint on --resume; leave the option out) (see glow train --help)\n", stderr)
    -- a training option that contradicts it: refused before the data is read (the folder named does not exist)
    code, _, stderr = glow_cmd(string.format("train --data %s/none --resume %s --epochs 4 --batch 32", tmp, ckpt), tmp)
    assert.equal(2, code)
    assert.matches("glow train: option --batch 32 contradicts the checkpoint " .. ckpt .. ", which was trained with "
      .. "batch = 16", stderr, 1, true)
    code, _, stderr = glow_cmd(string.format("train --data %s/none --resume %s --epochs 4 --flip", tmp, ckpt), tmp)
    assert.equal(2, code)
    assert.matches("option --flip true contradicts the checkpoint", stderr, 1, true)
    -- resumed into a new folder, the log starts with its header
    code, _, stderr = glow_cmd(string.format("train --data %s --resume %s --epochs 4 --out %s/new --no-progress", data,
      ckpt, tmp), tmp)
    assert.equal(0, code, stderr)
    assert.matches("^step,epoch,batch,bpd,", H.read(tmp .. "/new/log.csv"))
  end)

  it("samples a class-conditional checkpoint with -y, and evaluates it with the folder's labels", function()
    local m = glow.Glow { shape = { 8, 8, 1 }, levels = 2, depth = 1, width = 8, classes = 2 }
    local test = assert(glow.data.images(data .. "/test"))
    local x, y = test:batch(H.range(1, 16), {})
    m:initialize(x, y)
    local ckpt = tmp .. "/cond.safetensors"
    assert(m:save(ckpt))
    local code, stdout, stderr = glow_cmd(string.format("sample %s -n 4 -t 0.5 -y 1 %s/cond.png", ckpt, tmp), tmp)
    assert.equal(0, code, stderr)
    assert.matches("wrote " .. tmp .. "/cond.png: 4 samples at temperature 0.5", stdout, 1, true)
    assert.is_true(png(tmp .. "/cond.png"))
    code, stdout, stderr = glow_cmd(string.format("sample %s -n 4 -y 2 %s/cond.png", ckpt, tmp), tmp)
    assert.equal(2, code)
    assert.equal("", stdout)
    assert.matches("glow sample: option -y: labels must be integers in 0..1, got '2'", stderr, 1, true)
    code, stdout, stderr = glow_cmd(string.format("eval %s %s --no-average", ckpt, data), tmp)
    assert.equal(0, code, stderr)
    local got = tonumber(stdout:match(": ([%d.]+) bits/dim %(mean of 16 images%)"))
    assert.close(m:bits_per_dim(test), got, 1e-4)
  end)

  it("trains a class-conditional model on a folder's class subfolders (--classes); samples, evaluates, inspects it",
    function()
      local four, dir = tmp .. "/four", tmp .. "/classes"
      make_folder(four, 16, 8, 4)
      local code, stdout, stderr = glow_cmd(string.format("train --data %s --classes --max-steps 3 --out %s --levels 1 "
        .. "--depth 1 --width 8 --batch 8 --warmup 1 --no-progress", four, dir), tmp)
      assert.equal(0, code, stderr)
      assert.matches("glow: 16 train / 8 test images 8x8x1, 4 classes", stdout, 1, true)
      assert.matches("samples.png (temperature 0.70, row k: class k)", stdout, 1, true)
      local ckpt = dir .. "/checkpoint.safetensors"
      local m = assert(glow.load(ckpt, { average = true }))
      assert.equal(4, m.config.classes)
      assert.equal(0.01, m.config.class_weight)
      assert.same({ "class0", "class1", "class2", "class3" }, assert(glow.load(ckpt)).checkpoint.trainer.class_names)
      -- the labels reached training: the prior's class map and the head moved from their zero start
      for _, p in ipairs(m:parameters()) do
        if p.name == "top.class" or p.name:match("^head%.") then
          assert.is_true(p.value:max_abs_diff(glow.Tensor(p.value:shape())) > 0, p.name)
        end
      end

      code, stdout, stderr = glow_cmd(string.format("sample %s %s/c2.png -n 4 -y 2", ckpt, tmp), tmp)
      assert.equal(0, code, stderr)
      assert.matches("wrote " .. tmp .. "/c2.png: 4 samples", stdout, 1, true)
      assert.is_true(png(tmp .. "/c2.png"))

      -- eval: bits/dim given the true labels, and the head's accuracy (the first most probable class)
      code, stdout, stderr = glow_cmd(string.format("eval %s %s", ckpt, four), tmp)
      assert.equal(0, code, stderr)
      local test = assert(glow.data.images(four .. "/test"))
      local bpd = tonumber(stdout:match(": ([%d.]+) bits/dim %(mean of 8 images%)"))
      assert.close(m:bits_per_dim(test), bpd, 1e-4)
      local x, y = test:batch(H.range(1, 8), {})
      local logp, right = m:classify(x):totable(), 0
      for i = 1, 8 do
        local best = 1
        for j = 2, 4 do if logp[(i - 1) * 4 + j] > logp[(i - 1) * 4 + best] then best = j end end
        if best - 1 == y[i] then right = right + 1 end
      end
      assert.matches(string.format("\naccuracy: %.2f%% (8 images, 4 classes)\n", 100 * right / 8), stdout, 1, true)

      code, stdout, stderr = glow_cmd("info " .. ckpt, tmp)
      assert.equal(0, code, stderr)
      assert.matches("classes      4", stdout, 1, true)
      assert.matches("class_names  class0, class1, class2, class3", stdout, 1, true)

      -- on --resume the classes come from the checkpoint; the training set must have them
      code, stdout, stderr = glow_cmd(string.format("train --data %s --resume %s --epochs 2 --out %s", data, ckpt, dir),
        tmp)
      assert.equal(2, code)
      assert.equal("", stdout)
      assert.matches("glow train: the training set contradicts the checkpoint " .. ckpt .. ": " .. data .. " has 2 "
        .. "classes, the model 4", stderr, 1, true)
    end)

  it("refuses --classes on a folder without class subfolders, before any work", function()
    local flat = tmp .. "/flat"
    assert(os.execute("mkdir -p '" .. flat .. "'"))
    for i = 1, 4 do
      assert(glow.image.save_grid(string.format("%s/%d.png", flat, i), H.data({ 1, 8, 8, 1 }, i), { padding = 0 }))
    end
    local code, stdout, stderr = glow_cmd(string.format("train --data %s --classes --levels 1 --out %s/none", flat,
      tmp), tmp)
    assert.equal(2, code)
    assert.equal("", stdout)
    assert.equal("glow train: option --classes needs a labelled training set and " .. flat .. " has no labels (a "
      .. "folder whose top level holds one subfolder per class, fashion-mnist, cifar10:DIR or a pack of such a "
      .. "folder) (see glow train --help)\n", stderr)
    assert.is_nil(io.open(tmp .. "/none"))
  end)

  it("reports test bits/dim when --max-steps stops within an epoch, on --eval-limit images", function()
    local code, stdout, stderr = glow_cmd(string.format("train --data %s --max-steps 2 --eval-limit 6 --out %s/ms %s",
      data, tmp, TINY), tmp)
    assert.equal(0, code, stderr)
    assert.matches("test bits/dim: [%d.]+ %(6 test images%)", stdout)
  end)

  it("prints no test figure, and no nan, when the set has no test set; the log's test column stays empty", function()
    local code, _, stderr = glow_cmd(string.format("pack %s/train %s/nt.glowpack", data, tmp), tmp)
    assert.equal(0, code, stderr)
    local base = "train --data " .. tmp .. "/nt.glowpack --levels 2 --depth 1 --width 8 --batch 16 --warmup 1 "
    for i, extra in ipairs { "--epochs 2 --no-progress", "--epochs 2", "--max-steps 2 --schedule constant",
      "--max-steps 2 --schedule constant --no-progress", "--max-bpd 0.01 --no-progress" } do
      local dir = string.format("%s/nt%d", tmp, i)
      local stdout
      code, stdout, stderr = glow_cmd(string.format("%s %s --out %s", base, extra, dir), tmp)
      assert.equal(0, code, extra .. ": " .. stderr)
      assert.matches("glow: 48 train / no test images", stdout, 1, true)
      local all = (stdout .. stderr):lower()
      assert.is_nil(all:find("nan", 1, true), extra .. ": " .. stdout .. stderr)
      assert.is_nil(all:find("test bits/dim", 1, true), extra .. ": " .. stdout)
      local lines = 0
      for line in H.read(dir .. "/log.csv"):gmatch("[^\n]+") do
        lines = lines + 1
        local test_bpd = select(10, table.unpack(H.split_csv(line)))
        assert.equal(lines == 1 and "test_bpd" or "", test_bpd, line)
      end
      assert.is_true(lines > 1)
      -- every step skipped: the epoch's train figure is n/a
      if extra:find("max-bpd", 1, true) then assert.matches("epoch 1: (train n/a)", stdout, 1, true) end
    end
  end)

  it("packs a folder's train/ and test/ into one file each, or the one --split names; says what it skipped", function()
    local dir = tmp .. "/splits"
    assert(os.execute(string.format("cp -r '%s' '%s'", data, dir)))
    H.write(dir .. "/train/class0/a.gif", "GIF89a")
    H.write(dir .. "/train/class1/b.webp", "RIFF")
    H.write(dir .. "/train/class1/c.gif", "GIF89a")
    local code, stdout, stderr = glow_cmd(string.format("pack %s %s/sp.glowpack", dir, tmp), tmp)
    assert.equal(0, code, stderr)
    assert.equal(string.format("wrote %s/sp-train.glowpack: 48 images of 8x8x1, 2 classes; %s/sp-test.glowpack: 16 "
      .. "images of 8x8x1, 2 classes (the splits train/ and test/ of %s; --split train or --split test packs one)\n",
      tmp, tmp, dir), stdout)
    assert.equal(string.format("glow.data.pack: skipped 3 files of other formats (.gif 2, .webp 1; glow reads PNG and "
      .. "JPEG): first %s/train/class0/a.gif\n", dir), stderr)
    assert.is_nil(io.open(tmp .. "/sp.glowpack"))
    -- the classes are the class folders, not "test" and "train"
    local train = assert(glow.data.open_pack(tmp .. "/sp-train.glowpack"))
    assert.same({ "class0", "class1" }, train.class_names)
    code, stdout, stderr = glow_cmd(string.format("pack %s %s/only.glowpack --split test", dir, tmp), tmp)
    assert.equal(0, code, stderr)
    assert.equal("wrote " .. tmp .. "/only.glowpack: 16 images of 8x8x1, 2 classes\n", stdout)
    local test = assert(glow.data.open_pack(tmp .. "/only.glowpack"))
    assert.same(test:labels(), assert(glow.data.open_pack(tmp .. "/sp-test.glowpack")):labels())
    code, stdout, stderr = glow_cmd(string.format("pack %s/train %s/x.glowpack --split test", dir, tmp), tmp)
    assert.equal(2, code)
    assert.equal("", stdout)
    assert.matches("option --split test: " .. dir .. "/train holds no train/ or test/ folder", stderr, 1, true)
  end)

  it("composites transparent pixels over --background in glow pack and glow eval", function()
    -- 8x8 gray + alpha: the left half transparent (storing 7), the right half opaque 200
    local dir = tmp .. "/alpha"
    H.mkdir(dir)
    local row = string.rep("\7\0", 4) .. string.rep("\200\255", 4)
    local rows = {}
    for i = 1, 8 do rows[i] = row end
    for i = 1, 3 do H.write(string.format("%s/%d.png", dir, i), H.encode_png(8, 8, 8, 4, rows)) end
    local code, _, stderr = glow_cmd(string.format("pack %s %s/alpha.glowpack --background black", dir, tmp), tmp)
    assert.equal(0, code, stderr)
    local ds = assert(glow.data.open_pack(tmp .. "/alpha.glowpack"))
    local px = H.bytes_back(ds:batch({ 1 }, { noise = false }))
    assert.same({ 0, 0, 0, 0, 200, 200, 200, 200 }, { table.unpack(px, 1, 8) })
    -- eval sees white (the default) or the given colour under the transparent half
    local ckpt = out .. "/checkpoint.safetensors"
    local means = {}
    for _, bg in ipairs { "", " --background white", " --background 0,0,0" } do
      local c2, stdout, err2 = glow_cmd(string.format("eval %s %s%s", ckpt, dir, bg), tmp)
      assert.equal(0, c2, err2)
      means[#means + 1] = stdout:match(": ([%d.]+) bits/dim")
    end
    assert.equal(means[1], means[2])
    assert.not_equal(means[1], means[3])
  end)

  it("skips an image whose header says more than --max-pixels in glow pack and glow eval, or fails with --strict",
    function()
      local dir = tmp .. "/maxpx"
      H.mkdir(dir)
      assert(os.execute(string.format("cp '%s'/train/class0/00[1-3].png '%s'", data, dir)))
      assert(glow.image.save_grid(dir .. "/big.png", glow.Tensor { 1, 16, 16, 1 }))
      local code, stdout, stderr = glow_cmd(string.format("pack %s %s/mp.glowpack --max-pixels 100", dir, tmp), tmp)
      local _
      assert.equal(0, code, stderr)
      assert.equal(string.format("wrote %s/mp.glowpack: 3 images of 8x8x1\n", tmp), stdout)
      assert.equal(string.format("glow.data.pack: skipped %s/big.png: its header says 16x16 pixels, over the limit of "
        .. "100 (max_pixels)\nglow.data.pack: skipped 1 of 4 files\n", dir), stderr)
      code, _, stderr = glow_cmd(string.format("pack %s %s/mp.glowpack --max-pixels 100 --strict", dir, tmp), tmp)
      assert.equal(1, code)
      assert.equal(string.format("glow pack: %s/big.png: its header says 16x16 pixels, over the limit of 100 "
        .. "(max_pixels)\n", dir), stderr)
      code, _, stderr = glow_cmd(string.format("pack %s %s/mp.glowpack", dir, tmp), tmp)
      assert.equal(0, code, stderr)
      assert.equal("", stderr)
      code, _, stderr = glow_cmd(string.format("eval %s/checkpoint.safetensors %s --max-pixels 64", out, dir), tmp)
      assert.equal(0, code, stderr)
      assert.matches("glow.data.images: skipped " .. dir .. "/big.png: its header says 16x16 pixels, over the limit "
        .. "of 64 (max_pixels)\n", stderr, 1, true)
    end)

  it("refuses a named set or a pack of another shape than the model's with one line naming both and the way out",
    function()
      local rgb = tmp .. "/rgb.safetensors"
      local m = glow.Glow { shape = { 8, 8, 3 }, levels = 1, depth = 1, width = 4 }
      m:initialize(glow.randn({ 4, 8, 8, 3 }, 1, 0.2))
      assert(m:save(rgb))
      local code, _, stderr = glow_cmd(string.format("pack %s/test %s/gray.glowpack", data, tmp), tmp)
      assert.equal(0, code, stderr)
      local ckpt = out .. "/checkpoint.safetensors"
      local folder = "(a folder of images is resized and converted to the model's shape by itself)"
      for _, case in ipairs {
        { "eval " .. ckpt .. " fashion-mnist", "glow eval: fashion-mnist holds 28x28x1 images and the checkpoint's "
          .. "model takes 8x8x1: pack it at that shape: glow pack fashion-mnist OUT.glowpack --split test --size 8 "
          .. "--channels 1 " .. folder },
        { "eval " .. rgb .. " fashion-mnist:train", "glow eval: fashion-mnist:train holds 28x28x1 images and the "
          .. "checkpoint's model takes 8x8x3: Fashion-MNIST's gray images cannot be used with an RGB model "
          .. folder },
        { "eval " .. rgb .. " " .. tmp .. "/gray.glowpack", "glow eval: " .. tmp .. "/gray.glowpack holds 8x8x1 "
          .. "images and the checkpoint's model takes 8x8x3: pack its images again at that shape: glow pack SOURCE "
          .. "OUT.glowpack --size 8 --channels 3 " .. folder },
        { "eval " .. ckpt .. " " .. data .. " --csv " .. tmp .. "/x.csv --against cifar10:/nowhere", "glow eval: "
          .. "cifar10:/nowhere holds 32x32x3 images and the checkpoint's model takes 8x8x1: pack it at that shape: "
          .. "glow pack cifar10:/nowhere OUT.glowpack --split test --size 8 --channels 1 " .. folder },
        { "encode " .. rgb .. " " .. tmp .. "/gray.glowpack " .. tmp .. "/z.safetensors", "glow encode: " .. tmp
          .. "/gray.glowpack holds 8x8x1 images and the checkpoint's model takes 8x8x3" },
        { "train --data " .. data .. "/train --size 8 --channels 3 --test " .. tmp .. "/gray.glowpack --out " .. tmp
          .. "/never " .. TINY, "glow train: " .. tmp .. "/gray.glowpack holds 8x8x1 images and the model takes "
          .. "8x8x3" },
      } do
        local c2, stdout, err2 = glow_cmd(case[1], tmp)
        assert.equal(2, c2, case[1] .. ": " .. err2)
        assert.equal("", stdout)
        assert.matches(case[2], err2, 1, true)
        assert.is_nil(err2:find("\n.", 1), "more than one line: " .. err2)
      end
      -- the rgb model does take a folder of gray images: converted (and resized) by itself
      local c3, stdout, err3 = glow_cmd("encode " .. rgb .. " " .. data .. " " .. tmp .. "/zr.safetensors", tmp)
      assert.equal(0, c3, err3)
      assert.matches("wrote " .. tmp .. "/zr.safetensors", stdout, 1, true)
    end)

  it("gives each bad argument one line and exit code 2, before any work", function()
    local ckpt = out .. "/checkpoint.safetensors"
    assert(os.execute("mkdir -p '" .. tmp .. "/only-test/test'"))
    for _, case in ipairs {
      { "bogus", "glow: unknown command 'bogus'" },
      { "train --coupling foo", "glow train: option --coupling must be one of affine, additive, got foo" },
      { "train --levels 3", "glow train: image size 28x28 cannot be squeezed 3 times (levels = 3): height and width "
        .. "must be divisible by 8; choose fewer --levels, or --size for a folder" },
      { "train --width 0", "glow train: option --width must be >= 1, got 0" },
      { "train --temperature -1", "glow train: option --temperature must be >= 0, got -1" },
      { "train --clip -1", "glow train: option --clip must be >= 0, got -1" },
      { "train --polyak 1.5", "glow train: option --polyak must be <= 0.999999, got 1.5" },
      { "train --checkpoint-every -3",
        "glow train: option --checkpoint-every needs a step count or a time such as 30s, 10m or 1h, got '-3'" },
      { "train --lr abc", "glow train: option --lr needs a finite number, got 'abc'" },
      { "train --epochs 1.5", "glow train: option --epochs needs an integer, got '1.5'" },
      { "train --bogus 1", "glow train: unknown option '--bogus'" },
      { "train --flip --flip", "glow train: option '--flip' must be used at most 1 time" },
      { "train --depth 2 --depth 3", "glow train: option '--depth' must be used at most 1 time" },
      { "train --width", "glow train: option '--width' requires an argument" },
      { "train --data cifar100:x", "glow train: unknown data set 'cifar100:x'" },
      { "train --data /nonexistent/folder", "glow train: data set /nonexistent/folder: no such folder or file" },
      { "train --data " .. data .. "/train/class0/001.png", "glow train: data set " .. data .. "/train/class0/001.png "
        .. "is a single image, not a data set: give the folder that holds the images (" .. data .. "/train/class0)" },
      { "eval " .. ckpt .. " " .. data .. "/test/class1/001.png", "glow eval: data set " .. data .. "/test/class1/"
        .. "001.png is a single image, not a data set" },
      { "train --data " .. data .. " --size 12 --levels 3", "glow train: image size 12x12 cannot be squeezed 3 times" },
      { "train --size 8 --load-size 4", "glow train: option --load-size 4 must be >= --size 8" },
      { "train --crop middle", "glow train: option --crop must be one of center, random, got middle" },
      { "train --size 32", "glow train: option --size applies to a folder or a .glowpack file, not to fashion-mnist" },
      { "train --crop random", "glow train: option --crop random needs images stored larger than the model's" },
      { "train --levels 70", "glow train: option --levels must be <= 16, got 70" },
      { "train --class-weight 0.1", "glow train: option --class-weight applies to a class-conditional model: add "
        .. "--classes" },
      { "train --class-weight -1 --classes", "glow train: option --class-weight must be >= 0, got -1" },
      { "train --data " .. data .. " --resume " .. ckpt .. " --classes", "glow train: option --classes true "
        .. "contradicts the checkpoint " .. ckpt .. ", which has classes = none" },
      { "train --data " .. tmp .. "/only-test", "glow train: " .. tmp .. "/only-test holds test/ but no train/" },
      { "eval " .. ckpt, "glow eval: missing argument 'data'" },
      { "eval " .. ckpt .. " fashion-mnist:valid", "glow eval: data set fashion-mnist:valid: the split must be" },
      { "eval " .. ckpt .. " " .. data .. " --bins 1", "glow eval: option --bins must be >= 2, got 1" },
      { "sample " .. ckpt .. " " .. tmp .. "/x.png -n 0", "glow sample: option -n must be >= 1, got 0" },
      { "sample " .. ckpt .. " " .. tmp .. "/x.png --n 0", "glow sample: option -n must be >= 1, got 0" },
      { "sample " .. ckpt .. " " .. tmp .. "/x.png -t -1", "glow sample: option --temperature must be >= 0, got -1" },
      { "sample " .. ckpt .. " " .. tmp .. "/x.png -y 3",
        "glow sample: option -y: the checkpoint's model is not class-conditional" },
      { "sample " .. ckpt, "glow sample: missing argument 'out'" },
      { "sample " .. ckpt .. " " .. tmp .. "/x.png --scale 0", "glow sample: option --scale must be >= 1, got 0" },
      { "train --sample-every -1", "glow train: option --sample-every must be >= 0, got -1" },
      { "train --sample-scale 65", "glow train: option --sample-scale must be <= 64, got 65" },
      -- the grid's format comes from its name, checked before the checkpoint is read
      { "sample /nonexistent.safetensors " .. tmp .. "/x.gif", "glow sample: cannot write " .. tmp .. "/x.gif: .gif "
        .. "is not a format glow writes; the grid is written as PNG (.png) or JPEG (.jpg, .jpeg)" },
      { "sample " .. ckpt .. " " .. tmp .. "/x", "glow sample: cannot write " .. tmp .. "/x: its name has no "
        .. "extension; the grid is written as PNG (.png) or JPEG (.jpg, .jpeg)" },
      { "decode " .. ckpt .. " z.safetensors " .. tmp .. "/x.webp", "glow decode: cannot write " .. tmp .. "/x.webp: "
        .. ".webp is not a format glow writes" },
      { "encode " .. ckpt .. " " .. data .. " z.st --limit 0", "glow encode: option --limit must be >= 1, got 0" },
      { "decode " .. ckpt .. " a b c", "glow decode: too many arguments" },
      { "info", "glow info: missing argument 'checkpoint'" },
      { "plot a.csv", "glow plot: missing argument 'out'" },
      { "plot a.csv b.png --range 5:3", "glow plot: option --range: a range LO:HI needs LO < HI, got '5:3'" },
      { "plot a.csv b.png --range -1: --logy", "glow plot: option --range -1:: --logy needs LO > 0" },
      { "eval " .. ckpt .. " " .. data .. " --range 1:2", "glow eval: option --range applies to --histogram" },
      { "pack " .. data .. " p.glowpack --channels 2", "glow pack: option --channels must be one of 1, 3, got 2" },
      { "pack " .. data .. " p.glowpack --background pink", "glow pack: option --background needs white, black, gray "
        .. "or R,G,B (each 0..255), got 'pink'" },
      { "train --background 1,2", "glow train: option --background needs white, black, gray or R,G,B" },
      { "train --background black", "glow train: option --background applies to a folder of images, not to "
        .. "fashion-mnist (its images have no transparency)" },
      { "encode " .. ckpt .. " fashion-mnist z.st --background black", "glow encode: option --background applies to "
        .. "a folder of images, not to fashion-mnist" },
      { "pack " .. data .. " p.glowpack --max-pixels 0", "glow pack: option --max-pixels must be >= 1, got 0" },
      { "train --max-pixels 1000", "glow train: option --max-pixels applies to a folder of images, not to "
        .. "fashion-mnist (its images are already decoded)" },
      { "eval " .. ckpt .. " fashion-mnist --max-pixels 1000", "glow eval: option --max-pixels applies to a folder of "
        .. "images, not to fashion-mnist" },
    } do
      local code, stdout, stderr = glow_cmd(case[1], tmp)
      assert.equal(2, code, case[1] .. ": " .. stderr)
      assert.matches(case[2], stderr, 1, true)
      assert.is_nil(stderr:find("traceback", 1, true), stderr)
      assert.is_nil(stderr:find("\n.", 1), "more than one line: " .. stderr)
      assert.equal("", stdout, case[1])
    end
  end)

  it("gives a missing or corrupt checkpoint one line and exit code 1", function()
    H.write(tmp .. "/bad.safetensors", "not a checkpoint")
    for _, case in ipairs {
      { "info /nonexistent.safetensors", "glow info: checkpoint /nonexistent.safetensors: no such file" },
      { "info " .. tmp .. "/bad.safetensors", "glow info: " .. tmp .. "/bad.safetensors" },
      { "sample " .. tmp .. "/bad.safetensors " .. tmp .. "/x.png", "glow sample: " .. tmp .. "/bad.safetensors" },
      { "sample /nonexistent.safetensors " .. tmp .. "/made/not/x.png", "glow sample: checkpoint /nonexistent" },
    } do
      local code, _, stderr = glow_cmd(case[1], tmp)
      assert.equal(1, code, case[1] .. ": " .. stderr)
      assert.matches(case[2], stderr, 1, true)
      assert.is_nil(stderr:find("\n.", 1), "more than one line: " .. stderr)
    end
    -- nothing was made for an output that was never written
    assert.is_nil(io.open(tmp .. "/made"))
  end)
end)
