local H = require "spec.helper"

local glow = H.glow

local glow_cmd, one_line = H.glow_cmd, H.one_line


describe("glow train's output folder", function()
  local tmp, data
  local TINY = "--levels 1 --depth 1 --width 8 --warmup 2 --batch 8 --no-progress --max-steps 6"
  setup(function()
    tmp = H.tmpdir()
    data = tmp .. "/data"
    H.class_folder(data, 32, 8)
  end)
  teardown(function() H.rmdir(tmp) end)

  it("follows no symlink planted in it: the old probe name, the checkpoint's temporary name, the target", function()
    local out = tmp .. "/planted"
    H.mkdir(out)
    local victims = {}
    for i, name in ipairs { "checkpoint.safetensors.probe", "checkpoint.safetensors.tmp-1", "samples.png",
      "checkpoint.safetensors" } do
      victims[i] = tmp .. "/victim" .. i
      H.write(victims[i], "precious " .. i)
      assert(os.execute(string.format("ln -s '%s' '%s/%s'", victims[i], out, name)))
    end
    local code, _, stderr = glow_cmd(string.format("train --data %s %s --out %s --force", data, TINY, out), tmp)
    assert.equal(0, code, stderr)
    for i, v in ipairs(victims) do assert.equal("precious " .. i, H.read(v)) end
    local lfs = require "lfs"
    assert.equal("file", lfs.symlinkattributes(out .. "/checkpoint.safetensors", "mode"))
    assert.equal("file", lfs.symlinkattributes(out .. "/samples.png", "mode"))
    assert(glow.load(out .. "/checkpoint.safetensors"))
  end)

  it("refuses to append the log through a symlink, in one line, before any work", function()
    local out = tmp .. "/linked-log"
    H.mkdir(out)
    H.write(tmp .. "/victim-log", "precious")
    assert(os.execute(string.format("ln -s '%s/victim-log' '%s/log.csv'", tmp, out)))
    local code, stdout, stderr = glow_cmd(string.format("train --data %s %s --out %s", data, TINY, out), tmp)
    assert.equal(1, code)
    assert.equal("glow train: " .. out .. "/log.csv is a symlink; refusing to write through it (remove it)\n", stderr)
    assert.equal("", stdout)
    assert.equal("precious", H.read(tmp .. "/victim-log"))
  end)

  it("refuses a new run over another run's checkpoint, naming --resume and --force", function()
    local out = tmp .. "/taken"
    local code, _, stderr = glow_cmd(string.format("train --data %s %s --out %s", data, TINY, out), tmp)
    assert.equal(0, code, stderr)
    local before = H.read(out .. "/checkpoint.safetensors")
    local log = H.read(out .. "/log.csv")
    local stdout
    code, stdout, stderr = glow_cmd(string.format("train --data %s %s --out %s", data, TINY, out), tmp)
    assert.equal(2, code)
    assert.equal("", stdout)
    assert.matches(out .. " holds the checkpoint of another run: continue it with --resume " .. out
      .. "/checkpoint.safetensors, or start a new run over it with --force", stderr, 1, true)
    assert.is_true(one_line(stderr), stderr)
    assert.equal(before, H.read(out .. "/checkpoint.safetensors"))
    assert.equal(log, H.read(out .. "/log.csv"))
    code, _, stderr = glow_cmd(string.format("train --data %s %s --out %s --force", data, TINY, out), tmp)
    assert.equal(0, code, stderr)
  end)

  it("holds one run per folder: a second run at the same time is refused with the holder's pid", function()
    local out = tmp .. "/busy"
    local script = H.shell_env() .. string.format([[
lua5.4 lua/bin/glow train --data %s --levels 1 --depth 1 --width 8 --warmup 2 --batch 8 --no-progress \
  --epochs 200 --out %s >%s/a.out 2>%s/a.err &
pid=$!
end=$(( $(date +%%s) + 120 ))
while [ "$(cat %s/log.csv 2>/dev/null | wc -l)" -lt 3 ] && [ "$(date +%%s)" -lt $end ]; do sleep 0.01; done
lua5.4 lua/bin/glow train --data %s --levels 1 --depth 1 --width 8 --warmup 2 --batch 8 --no-progress \
  --max-steps 4 --out %s --force >%s/b.out 2>%s/b.err
echo "b=$? pid=$pid"
kill -INT $pid
wait $pid
echo "a=$?"
]], data, out, tmp, tmp, out, data, out, tmp, tmp)
    H.write(tmp .. "/busy.sh", script)
    local p = io.popen("sh " .. tmp .. "/busy.sh")
    local res = p:read("a")
    p:close()
    local b, pid, a = res:match("b=(%d+) pid=(%d+)\na=(%d+)")
    assert.equal("1", b, res .. H.read(tmp .. "/b.err"))
    assert.equal("glow train: " .. out .. " is in use by another glow train (pid " .. pid .. "): one run per folder; "
      .. "wait for it, or choose another --out\n", H.read(tmp .. "/b.err"))
    -- the first run went on undisturbed, then stopped on its SIGINT with its checkpoint
    assert.equal("130", a, H.read(tmp .. "/a.err"))
    assert(glow.load(out .. "/checkpoint.safetensors"))
    local fields
    for line in io.lines(out .. "/log.csv") do
      local n = select(2, line:gsub(",", ",")) + 1
      fields = fields or n
      assert.equal(fields, n, line)
    end
  end)
end)

describe("sizes read from a checkpoint", function()
  local tmp, data
  setup(function()
    tmp = H.tmpdir()
    data = tmp .. "/data"
    H.class_folder(data, 32, 8)
  end)
  teardown(function() H.rmdir(tmp) end)

  --- Rewrite a checkpoint with its trainer state changed by edit(trainer).
  local function tamper(path, edit)
    local json = require "glow.json"
    local tensors, meta = assert(glow.checkpoint.read(path))
    local list = {}
    for name, t in pairs(tensors) do list[#list + 1] = { name = name, value = t } end
    table.sort(list, function(a, b) return a.name < b.name end)
    local tr = json.decode(meta["glow.trainer"])
    edit(tr)
    meta["glow.trainer"] = json.encode(tr)
    assert(glow.checkpoint.write(path, list, meta))
  end

  it("bounds a random crop's stored size by the model's (crop_from, --load-size) before loading any image", function()
    local out = tmp .. "/crops"
    local code, _, stderr = glow_cmd(string.format("train --data %s --levels 1 --depth 1 --width 8 --warmup 2 "
      .. "--batch 8 --no-progress --max-steps 4 --size 8 --load-size 10 --crop random --out %s", data, out), tmp)
    assert.equal(0, code, stderr)
    local ckpt = out .. "/checkpoint.safetensors"
    tamper(ckpt, function(tr)
      tr.settings.crop_from = "16384x16384x1"
      tr.record["load-size"] = nil
    end)
    local stdout
    code, stdout, stderr = glow_cmd("train --resume " .. ckpt .. " --max-steps 8", tmp)
    assert.equal(1, code)
    assert.equal("", stdout)
    assert.equal("glow train: checkpoint " .. ckpt .. ": its trainer state's crop_from '16384x16384x1' is out of "
      .. "bounds for a 8x8x1 model (a size from 8 to 64)\n", stderr)
    tamper(ckpt, function(tr)
      tr.settings.crop_from = "10x10x1"
      tr.record["load-size"] = 100000
    end)
    code, _, stderr = glow_cmd("train --resume " .. ckpt .. " --max-steps 8", tmp)
    assert.equal(1, code)
    assert.matches("its recorded option --load-size 100000 is out of bounds for a 8x8x1 model (8 to 64)", stderr, 1,
      true)
  end)

  it("refuses to sample or evaluate more than the memory budget holds, before allocating", function()
    local m = glow.Glow { shape = { 4096, 4096, 3 }, levels = 2, depth = 1, width = 4, learn_top = false }
    m:apply(function(x) if x.check_init then x.initialized = true end end)
    m.initialized = true
    local ckpt = tmp .. "/huge.safetensors"
    assert(m:save(ckpt))
    local code, stdout, stderr = glow_cmd("sample " .. ckpt .. " " .. tmp .. "/h.png", tmp)
    assert.equal(1, code)
    assert.equal("", stdout)
    assert.matches("^glow sample: sampling 64 images of 4096x4096x3 needs about 96%.0 GiB, over the [%d.]+ GiB "
      .. "budget %(half the memory, or GLOW_MEMORY_BUDGET%): lower %-n\n$", stderr)
    -- eval's batches too, before any image is brought to that shape
    code, stdout, stderr = glow_cmd("eval " .. ckpt .. " " .. data, tmp)
    assert.equal(1, code)
    assert.equal("", stdout)
    assert.matches("^glow eval: evaluating batches of 256 images of 4096x4096x3 needs about 384%.0 GiB, over the "
      .. "[%d.]+ GiB budget %(half the memory, or GLOW_MEMORY_BUDGET%): lower %-%-batch\n$", stderr)
  end)
end)
