--- The program bench/valgrind.sh runs under memcheck: a tiny model trained
--- a few steps on made-up images (glow.train.run with a checkpoint), the
--- checkpoint loaded back and compared, a few samples written as PNG.
local glow = require "glow"
local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p '" .. dir .. "'"))

-- 64 structured 8x8 gray images (spec/idx.lua, from this checkout)
package.path = (arg[0]:match("^(.-)bench/valgrind_run%.lua$") or "./") .. "?.lua;" .. package.path
local ds = require("spec.idx").bars(glow, 64)

local model = glow.Glow { shape = { 8, 8, 1 }, levels = 2, depth = 2, width = 8, seed = 1, classes = 4 }
local ckpt = dir .. "/c.safetensors"
local result = glow.train.run { model = model, train = ds, test = ds, epochs = 1, batch = 16, lr = 1e-3,
  warmup = 1, seed = 2, progress = false, init_size = 32, polyak = 0.9, checkpoint = ckpt,
  checkpoint_every = 2, eval_limit = 32, print = function() end }
assert(result.steps == 4)
local loaded = assert(glow.load(ckpt))
local a, b = model:parameters(), loaded:parameters()
for i = 1, #a do assert(a[i].value:max_abs_diff(b[i].value) == 0, a[i].name) end
local s = loaded:sample(4, { temperature = 0.7, seed = 3, y = { 0, 1, 2, 3 } })
assert(glow.image.save_grid(dir .. "/s.png", s, { cols = 2 }))
os.execute("rm -rf '" .. dir .. "'")
print("valgrind_run: trained 4 steps, saved, loaded, sampled")
