--- Reconstruction drift of a trained model: how far the inputs that the
--- backward pass rebuilds by inverses stray from the ones the forward pass
--- computed, step by step, on a batch of Fashion-MNIST test images.
---
---   lua5.4 bench/drift.lua CHECKPOINT [N]     (N images, default 64)
---
--- Two rebuilds from each level's exact output (the level's latents, which
--- the model keeps, so no error crosses from one level to the next):
---   training: what loss_and_grad does; each coupling takes the half of its
---     input it transforms from what the forward kept, so only the halves
---     passed through unchanged carry rebuilt values;
---   inverse: the plain inverse of every piece (decode), which divides by the
---     affine scales.
--- Prints, per level, the largest error relative to the largest activation
--- over the level's steps, for both.
local glow = require "glow"
local core = glow.core

local path, n = arg[1], tonumber(arg[2]) or 64
if not path then
  io.stderr:write("usage: lua5.4 bench/drift.lua CHECKPOINT [N]\n")
  os.exit(2)
end
local model = assert(glow.load(path))
local test = glow.data.fashion_mnist("test")
local x = test:batches { size = n, n_bits = model.config.n_bits, seed = 1 }()

local function rel(a, b) return a:max_abs_diff(b) / math.max(b:max_abs(), 1e-30) end

print(string.format("%s, %d test images", path, n))
print()
print("| level | steps | training rebuild: max rel. error | plain inverse: max rel. error |")
print("|---|---|---|---|")
for l, level in ipairs(model.levels) do
  -- a level is Flow{squeeze, step1, ..., stepK [, split]}
  local pieces = level.children
  x = pieces[1].module:forward(x)
  local split = pieces[#pieces].name == "split" and pieces[#pieces].module or nil
  local steps, inputs, halves = {}, {}, {}
  for k = 2, split and #pieces - 1 or #pieces do
    local step, i = pieces[k].module, k - 1
    steps[i] = step
    inputs[i] = x
    local an, perm, cp = step.children[1].module, step.children[2].module, step.children[3].module
    local u = perm:forward((an:forward(x)))
    local _, z2 = core.split_channels(u, cp.c1)
    halves[i] = z2 -- what the coupling keeps during a training forward
    x = step:forward(x)
  end
  local out = x
  local worst_train, worst_inv = 0, 0
  local y = out
  for i = #steps, 1, -1 do -- the training rebuild
    local step = steps[i]
    local an, perm, cp = step.children[1].module, step.children[2].module, step.children[3].module
    local y1 = core.split_channels(y, cp.c1)
    y = an:inverse(perm:inverse(core.concat_channels(y1, halves[i])))
    worst_train = math.max(worst_train, rel(y, inputs[i]))
  end
  y = out
  for i = #steps, 1, -1 do -- the plain inverse
    y = steps[i]:inverse(y)
    worst_inv = math.max(worst_inv, rel(y, inputs[i]))
  end
  print(string.format("| %d | %d | %.2e | %.2e |", l, #steps, worst_train, worst_inv))
  if split then x = (split:forward(out)) end
end
