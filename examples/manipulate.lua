--- Attribute manipulation in latent space (the paper's section 5.3): the
--- direction of an attribute is the mean latent (every level) of images
--- with it minus the mean latent of images without it. Walking an image's
--- latents along it, z + a * direction for a from -max-scale to max-scale,
--- and decoding gives a row with the original image in the middle. Labels
--- serve only to pick the two sets, so unconditional models work too.
---
---   lua5.4 examples/manipulate.lua --checkpoint PATH [--attribute footwear|sleeves|top]
---       [--attribute-dir DIR] [--images DIR] [--direction-images 10000] [--rows 6]
---       [--max-scale 1] [--steps 3] [--quick] [--out DIR] [--seed 0] [--data-dir DIR]
---
--- Built-in attributes, from Fashion-MNIST's labels (the first
--- --direction-images training images give the two means):
---   footwear: sandal 5, sneaker 7, ankle boot 9 against the rest.
---   sleeves:  long sleeves, pullover 2, coat 4, shirt 6, against short or no
---             sleeves, T-shirt/top 0, dress 3. Both sets are upper-body
---             garments of the same outline, so the difference is mostly the
---             arms; set against trousers, shoes and bags it would be "a top
---             or not" (that is the next one).
---   top:      T-shirt/top 0, pullover 2, dress 3, coat 4, shirt 6 against the rest.
--- Half of the rows walk test images without the attribute, half images with it.
---
--- Any labelled set: --attribute-dir DIR (it replaces --attribute), a folder
--- with two subfolders of PNG files, "with" and "without" (read by
--- glow.data.images; every image of the model's size). The walked images are then the first --rows PNG
--- files of --images DIR, or of Fashion-MNIST's test set.
---
--- --quick without --checkpoint trains a tiny unconditional model first.
--- Writes DIR/manipulate-<attribute>.png and DIR/summary.txt (DIR: out/manipulate).
local C = dofile((arg[0]:match("^(.*)[/\\]") or ".") .. "/common.lua")

local ATTRIBUTES = {
  footwear = { with = { 5, 7, 9 } },
  sleeves = { with = { 2, 4, 6 }, without = { 0, 3 } },
  top = { with = { 0, 2, 3, 4, 6 } },
}

local SPEC = {
  checkpoint = { "string" },
  attribute = { "string", "footwear", choices = { "footwear", "sleeves", "top" } },
  ["attribute-dir"] = { "string" },
  images = { "string" },
  ["direction-images"] = { "int", 10000, quick = 300, min = 1 },
  rows = { "int", 6, quick = 2, min = 1 },
  ["max-scale"] = { "number", 1, min = 0 },
  steps = { "int", 3, quick = 2, min = 1 },
}

--- The mean latents (one tensor {1, ...} per level) of images idx of ds.
local function mean_latents(model, ds, idx)
  local mean
  for first = 1, #idx, 256 do
    local chunk = table.move(idx, first, math.min(first + 255, #idx), 1, {})
    local zs = model:encode(ds:batch(chunk, { noise = false, n_bits = model.config.n_bits }))
    local terms = {}
    for i = 1, #chunk do terms[i] = { zs, i, 1 / #idx } end
    local part = C.combine_latents({ terms })
    if mean then
      for l, t in ipairs(part) do mean[l]:add_(t) end
    else
      mean = part
    end
  end
  return mean
end

--- Which images of ds have label in set (or, with no set, not in other).
local function with_labels(ds, n, set, other)
  local labels = ds:labels(1, math.min(n, ds:size()))
  local member, not_in = {}, {}
  for _, k in ipairs(set or {}) do member[k] = true end
  for _, k in ipairs(other or {}) do not_in[k] = true end
  local idx = {}
  for i, k in ipairs(labels) do
    if (set and member[k]) or (not set and not not_in[k]) then idx[#idx + 1] = i end
  end
  return idx
end

C.script("manipulate", SPEC, function(o, out)
  local model, averaged, source = C.model(o, out)
  out:say("model: %s", source)
  local name, attr_ds, with, without
  if o["attribute-dir"] then
    attr_ds = C.images(o["attribute-dir"])
    local k = {}
    for i, cname in ipairs(attr_ds.class_names or {}) do k[cname] = i - 1 end
    if not (k.with and k.without) or #attr_ds.class_names ~= 2 then
      C.fail("%s must hold exactly two subfolders of PNG files, 'with' and 'without'", o["attribute-dir"])
    end
    C.check_shape(attr_ds, model, o["attribute-dir"])
    name = o["attribute-dir"]:gsub("/+$", ""):match("([^/]+)$")
    with = with_labels(attr_ds, attr_ds:size(), { k.with })
    without = with_labels(attr_ds, attr_ds:size(), { k.without })
  else
    name = o.attribute
    local a = ATTRIBUTES[name]
    attr_ds = C.fashion_mnist(o, "train")
    C.check_shape(attr_ds, model, "Fashion-MNIST")
    with = with_labels(attr_ds, o["direction-images"], a.with)
    without = with_labels(attr_ds, o["direction-images"], a.without, a.with)
  end
  if #with == 0 or #without == 0 then
    C.fail("attribute %s: %d images with it, %d without; both sets need images (raise --direction-images)",
      name, #with, #without)
  end

  -- the images to walk
  local rows = o.rows
  local walk
  if o.images then
    local ds = C.images(o.images)
    C.check_shape(ds, model, o.images)
    rows = math.min(rows, ds:size())
    local idx = {}
    for i = 1, rows do idx[i] = i end
    walk = ds:batch(idx, { noise = false, n_bits = model.config.n_bits })
  else
    local test = C.fashion_mnist(o, "test")
    C.check_shape(test, model, "Fashion-MNIST")
    local idx = {}
    if ATTRIBUTES[name] and not o["attribute-dir"] then
      local a = ATTRIBUTES[name]
      local no, yes = with_labels(test, test:size(), a.without, a.with), with_labels(test, test:size(), a.with)
      for i = 1, math.min(rows - rows // 2, #no) do idx[#idx + 1] = no[i] end
      for i = 1, math.min(rows // 2, #yes) do idx[#idx + 1] = yes[i] end
    else
      for i = 1, math.min(rows, test:size()) do idx[i] = i end
    end
    rows = #idx
    walk = test:batch(idx, { noise = false, n_bits = model.config.n_bits })
  end

  local scales = {}
  for k = -o.steps, o.steps do
    if k ~= 0 then scales[#scales + 1] = o["max-scale"] * k / o.steps end
  end
  local decoded, norms = averaged(function()
    local dir = mean_latents(model, attr_ds, with)
    local mean_without = mean_latents(model, attr_ds, without)
    local norms = {}
    for l, t in ipairs(dir) do
      t:add_(mean_without[l], -1)
      norms[l] = string.format("%.3g", math.sqrt(t:dot(t)))
    end
    local zs = model:encode(walk)
    local items = {}
    for r = 1, rows do
      for _, a in ipairs(scales) do items[#items + 1] = { { zs, r }, { dir, 1, a } } end
    end
    return model:decode(C.combine_latents(items)), norms
  end)

  local grid, per = {}, #scales
  for r = 1, rows do
    for j = 1, per do
      if j == per // 2 + 1 then grid[#grid + 1] = { walk, r } end
      grid[#grid + 1] = { decoded, (r - 1) * per + j }
    end
  end
  local file = "manipulate-" .. name:gsub("[^%w%-_]", "_") .. ".png"
  out:grid(file, C.stack(grid), per + 1)
  out:say("attribute %s: mean latent of %d images with it minus that of %d without; norm per level %s",
    name, #with, #without, table.concat(norms, ", "))
  local shown = {}
  for i, a in ipairs(scales) do shown[i] = string.format("%.2f", a) end
  table.insert(shown, per // 2 + 1, "original")
  out:say("%s: %d rows, columns at multiples %s of the direction", file, rows, table.concat(shown, ", "))
end)
