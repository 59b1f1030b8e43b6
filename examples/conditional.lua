--- Class-conditional Glow on Fashion-MNIST: trains a model whose top prior
--- depends on the label (classes = 10) with a classification head on the
--- top latent (loss = bits/dim + class_weight * cross-entropy / ln 2),
--- prints the test bits/dim (of x given its label) and the head's test
--- accuracy, writes a grid with one row of samples per class at temperature
--- 0.75, and reports how often the model's own head gives class k to its
--- samples of class k. Evaluation and sampling use the Polyak average.
---
---   lua5.4 examples/conditional.lua [--epochs 5] [--class-weight 0.01] [--temperature 0.75]
---       [--cols 10] [--accuracy-samples 100] [--checkpoint PATH] [--quick] [--out DIR] [--seed 0]
---       [--data-dir DIR]
---       [--max-steps N] [--batch 64] [--lr 1e-3] [--warmup 200] [--schedule wsd] [--decay-frac 0.2]
---       [--clip 100] [--polyak 0.999] [--levels 2] [--depth 8] [--width 128] [--coupling affine]
---       [--permutation invconv_lu] [--eval-limit N]
---
--- --checkpoint PATH evaluates and samples a trained class-conditional
--- checkpoint instead of training. Writes DIR/samples.png (row k: class k),
--- DIR/summary.txt and, when it trains, DIR/checkpoint.safetensors (for
--- examples/temperature.lua, interpolate.lua, manipulate.lua) and
--- DIR/log.csv. DIR defaults to out/conditional.
local C = dofile((arg[0]:match("^(.*)[/\\]") or ".") .. "/common.lua")

local SPEC = C.merge(C.TRAIN_OPTIONS, {
  epochs = { "int", 5, min = 1 },
  ["class-weight"] = { "number", 0.01, min = 0 },
  temperature = { "number", 0.75, min = 0 },
  cols = { "int", 10, quick = 4, min = 1 },
  ["accuracy-samples"] = { "int", 100, quick = 8, min = 1 },
  checkpoint = { "string" },
})

--- The 0-based argmax of each row of log-probabilities {n, k}.
local function argmax_rows(logp)
  local n, k = logp:shape()[1], logp:shape()[2]
  local flat, best = logp:totable(), {}
  for i = 1, n do
    local b = 1
    for j = 2, k do
      if flat[(i - 1) * k + j] > flat[(i - 1) * k + b] then b = j end
    end
    best[i] = b - 1
  end
  return best
end

C.script("conditional", SPEC, function(o, out)
  local test = C.fashion_mnist(o, "test")
  local classes = test.classes
  local model, result, averaged
  if o.checkpoint then
    local is_avg
    model, averaged, is_avg = C.load(o.checkpoint, "examples/conditional.lua --checkpoint")
    if model.config.classes ~= classes then
      C.fail("%s holds a model of %d classes; Fashion-MNIST has %d", o.checkpoint, model.config.classes, classes)
    end
    C.check_shape(test, model, "Fashion-MNIST")
    out:say("model: checkpoint %s%s", o.checkpoint, is_avg and " (Polyak-averaged weights)" or "")
  else
    local train = C.fashion_mnist(o, "train")
    model, result, averaged = C.train(o, { train = train, test = test, classes = classes,
      class_weight = o["class-weight"], checkpoint = out:add("checkpoint.safetensors"), log = out:add("log.csv") })
    local cfg = model.config
    out:say("model: levels %d, depth %d, width %d, %s coupling, %s, classes %d, class_weight %g; %d steps in %.1f s%s",
      cfg.levels, cfg.depth, cfg.width, cfg.coupling, cfg.permutation, classes, cfg.class_weight, result.steps,
      result.state.wall, o.polyak > 0 and "; evaluated with the Polyak average" or "")
  end
  local limit = o["eval-limit"] > 0 and math.min(o["eval-limit"], test:size()) or test:size()
  local n_bits = model.config.n_bits

  averaged(function()
    -- test bits/dim of x given its label; reuse the trainer's figure when it
    -- evaluated the same images at the end of the run
    local bpd = result and o["max-steps"] == 0 and result.final_test_bpd
      or model:bits_per_dim(test, { limit = limit })
    out:say("test bits/dim: %.4f (%d test images, given their labels)", bpd, limit)

    local right = 0
    for x, y in test:batches { size = 256, limit = limit, n_bits = n_bits } do
      for i, k in ipairs(argmax_rows(model:classify(x))) do
        if k == y[i] then right = right + 1 end
      end
    end
    out:say("test accuracy of the classification head: %.4f (%d / %d)", right / limit, right, limit)

    -- one row per class: the first cols of accuracy-samples samples of class k
    local T, cols = o.temperature, o.cols
    local per = math.max(cols, o["accuracy-samples"])
    local rows, agree, total = {}, 0, 0
    local per_class = {}
    for k = 0, classes - 1 do
      local s = model:sample(per, { y = C.rep(k, per), temperature = T, seed = o.seed * 1000 + k })
      local hits = 0
      for _, p in ipairs(argmax_rows(model:classify(s))) do
        if p == k then hits = hits + 1 end
      end
      agree, total = agree + hits, total + per
      per_class[#per_class + 1] = string.format("%d %.2f", k, hits / per)
      for i = 1, cols do rows[#rows + 1] = { s, i } end
    end
    out:say("the head's accuracy on the model's samples (temperature %.2f, %d per class): %.4f", T, per,
      agree / total)
    out:say("  per class (label accuracy): %s", table.concat(per_class, ", "))
    out:grid("samples.png", C.stack(rows), cols)
    out:say("samples.png: row k holds class k (%s), temperature %.2f", table.concat(test.class_names, ", "), T)
  end)
end)
