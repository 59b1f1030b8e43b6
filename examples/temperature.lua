--- The effect of temperature on samples: one grid with a column per
--- temperature and a row per sample. A row keeps the same noise eps in
--- every column (z = mean + T * exp(logs) * eps at every level), so it shows
--- one sample moving from the prior's mean (T = 0) to a full-temperature
--- draw (T = 1).
---
---   lua5.4 examples/temperature.lua --checkpoint PATH [--rows 8]
---       [--temperatures 0,0.25,0.6,0.7,0.8,0.9,1.0] [--class K] [--quick] [--out DIR] [--seed 0]
---
--- --class K samples class K in every row (a class-conditional checkpoint,
--- from examples/conditional.lua); a conditional model without --class
--- draws a label per row. --quick without --checkpoint trains a tiny
--- class-conditional model first. Writes DIR/temperature.png and
--- DIR/summary.txt (DIR: out/temperature).
local C = dofile((arg[0]:match("^(.*)[/\\]") or ".") .. "/common.lua")

local SPEC = {
  checkpoint = { "string" },
  rows = { "int", 8, quick = 3, min = 1 },
  temperatures = { "numbers", { 0, 0.25, 0.6, 0.7, 0.8, 0.9, 1.0 }, min = 0 },
  class = { "int", min = 0 },
}

C.script("temperature", SPEC, function(o, out)
  local model, averaged, source = C.model(o, out, { need_classes = o.class and "--class", quick_classes = 10 })
  if o.class and o.class >= model.config.classes then
    C.fail("--class must be below the model's %d classes, got %d", model.config.classes, o.class)
  end
  out:say("model: %s", source)
  local ts, rows = o.temperatures, o.rows
  local y = o.class and C.rep(o.class, rows) or nil
  local columns = averaged(function()
    local s = {}
    -- the same seed in every column: the same eps (and labels) in every row
    for j, t in ipairs(ts) do s[j] = model:sample(rows, { temperature = t, y = y, seed = o.seed }) end
    return s
  end)
  local items = {}
  for r = 1, rows do
    for j = 1, #ts do items[#items + 1] = { columns[j], r } end
  end
  out:grid("temperature.png", C.stack(items), #ts)
  out:say("temperature.png: %d rows, columns at temperatures %s%s", rows, table.concat(ts, ", "),
    o.class and string.format(", class %d", o.class) or "")
end)
