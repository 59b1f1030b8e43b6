--- Interpolation in latent space: encodes pairs of real Fashion-MNIST test
--- images (at the bin centres, no dequantization noise), moves linearly
--- from one's latents to the other's at every level, z = (1 - a) z_A + a z_B
--- for a = 1/(steps+1) .. steps/(steps+1), decodes, and writes one row per
--- pair: real image A, the decoded points, real image B.
---
---   lua5.4 examples/interpolate.lua --checkpoint PATH [--pairs 8] [--steps 7] [--class K]
---       [--quick] [--out DIR] [--seed 0] [--data-dir DIR]
---
--- The pairs are drawn from the test set by --seed; --class K draws both
--- images of every pair from class K (the dataset's labels: any model). The
--- flow does not depend on labels, so conditional and unconditional
--- checkpoints both work. --quick without --checkpoint trains a tiny
--- class-conditional model first. Writes DIR/interpolate.png and
--- DIR/summary.txt (DIR: out/interpolate).
local C = dofile((arg[0]:match("^(.*)[/\\]") or ".") .. "/common.lua")

local SPEC = {
  checkpoint = { "string" },
  pairs = { "int", 8, quick = 2, min = 1 },
  steps = { "int", 7, quick = 3, min = 1 },
  class = { "int", min = 0 },
}

C.script("interpolate", SPEC, function(o, out)
  local test = C.fashion_mnist(o, "test")
  local model, averaged, source = C.model(o, out, { quick_classes = 10 })
  C.check_shape(test, model, "Fashion-MNIST")
  out:say("model: %s", source)
  if o.class and o.class >= test.classes then
    C.fail("--class must be below %d (Fashion-MNIST's classes), got %d", test.classes, o.class)
  end

  -- 2 * pairs test images in an order drawn by the seed, of one class when asked
  local labels, idx = test:labels(), {}
  for _, i in ipairs(C.glow.data.permutation(test:size(), o.seed, 0)) do
    if not o.class or labels[i] == o.class then idx[#idx + 1] = i end
    if #idx == 2 * o.pairs then break end
  end
  if #idx < 2 * o.pairs then C.fail("--pairs %d needs %d test images, there are %d", o.pairs, 2 * o.pairs, #idx) end
  local x = test:batch(idx, { noise = false, n_bits = model.config.n_bits })

  -- the points between, then the real images themselves (a check that
  -- encode, the latent arithmetic and decode round-trip)
  local items = {}
  for p = 1, o.pairs do
    for k = 1, o.steps do
      local a = k / (o.steps + 1)
      items[#items + 1] = { { nil, 2 * p - 1, 1 - a }, { nil, 2 * p, a } }
    end
  end
  for i = 1, 2 * o.pairs do items[#items + 1] = { { nil, i } } end
  local decoded = averaged(function()
    local zs = model:encode(x)
    for _, terms in ipairs(items) do
      for _, term in ipairs(terms) do term[1] = zs end
    end
    return model:decode(C.combine_latents(items))
  end)
  local ends = {}
  for i = 1, 2 * o.pairs do ends[i] = { decoded, o.pairs * o.steps + i } end
  local err = C.stack(ends):max_abs_diff(x)

  local row = {}
  for p = 1, o.pairs do
    row[#row + 1] = { x, 2 * p - 1 }
    for k = 1, o.steps do row[#row + 1] = { decoded, (p - 1) * o.steps + k } end
    row[#row + 1] = { x, 2 * p }
  end
  out:grid("interpolate.png", C.stack(row), o.steps + 2)
  local names = {}
  for p = 1, o.pairs do
    names[p] = string.format("%d-%d", labels[idx[2 * p - 1]], labels[idx[2 * p]])
  end
  out:say("interpolate.png: %d pairs (labels %s), real images at both ends, %d steps between", o.pairs,
    table.concat(names, ", "), o.steps)
  out:say("decode(encode(x)) of the real images: largest difference %.2g", err)
end)
