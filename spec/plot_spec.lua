local H = require "spec.helper"
local plot = require "glow.plot"

local PNG_SIGNATURE = "\137PNG\r\n\26\n"
local HEADER = "step,epoch,batch,bpd,loss,lr,grad_norm,images_per_s,wall_s,test_bpd,skipped\n"

local read = H.read

local listdir = H.listdir

--- A log as glow.train writes it: a row per step, a row per evaluation, and
--- a skipped step whose bits/dim is not finite.
local function training_log(path)
  local rows = { HEADER }
  for step = 1, 20 do
    local bpd = step == 7 and "-nan" or string.format("%.6f", 6 - 2 * step / 20)
    rows[#rows + 1] = string.format("%d,%d,%d,%s,%s,0.001,1.5,250.00,%.2f,,%d\n", step, (step - 1) // 10 + 1,
      (step - 1) % 10 + 1, bpd, bpd, step * 0.25, step == 7 and 1 or 0)
    if step % 10 == 0 then
      rows[#rows + 1] = string.format("%d,%d,10,,,,,,%.2f,%.6f,\n", step, step // 10, step * 0.25 + 0.1,
        5.2 - step / 20)
    end
  end
  H.write(path, table.concat(rows))
end

--- A stand-in gnuplot: lists a png terminal, then fails every script with a
--- message on stderr. Lets the checks before and after drawing run without
--- gnuplot.
local function fake_gnuplot(dir)
  local path = dir .. "/fake-gnuplot"
  H.write(path, "#!/bin/sh\nif [ \"$1\" = -e ]; then echo '   png  PNG images using libgd'; exit 0; fi\n"
    .. "echo 'line 9: undefined variable: oops' >&2\nexit 1\n")
  assert(os.execute("chmod +x '" .. path .. "'"))
  return path
end

--- A stand-in gnuplot that draws nothing: lists a png terminal, keeps a
--- copy of each script and its data files in DIR/seen/, and writes a PNG
--- signature. Returns its path and a function giving the last script.
local function recording_gnuplot(dir)
  local path, seen = dir .. "/rec-gnuplot", dir .. "/seen"
  assert(os.execute("mkdir -p '" .. seen .. "'"))
  H.write(path, "#!/bin/sh\nif [ \"$1\" = -e ]; then echo '   png  PNG images using libgd'; exit 0; fi\n"
    .. "cp \"$1\" '" .. seen .. "/plot.gp'\n"
    .. "for f in \"$(dirname \"$1\")\"/*.dat; do cp \"$f\" '" .. seen .. "/'; done\n"
    .. "printf '\\211PNG\\r\\n\\032\\n'\n")
  assert(os.execute("chmod +x '" .. path .. "'"))
  return path, function() return read(seen .. "/plot.gp") end, seen
end

--- The y (curve) or x (histogram) range a script sets: lo, hi.
local function script_range(script, axis)
  local lo, hi = script:match("set " .. axis .. "range %[([^:]+):([^%]]+)%]")
  return tonumber(lo), tonumber(hi)
end

--- A log of n steps whose bits/dim falls from 6 to 4, with extra rows
--- (step -> {bpd, skipped}) put in place of the plain ones.
local function long_log(path, n, extra)
  local rows = { HEADER }
  for step = 1, n do
    local e = extra[step]
    local bpd = e and e[1] or string.format("%.6f", 6 - 2 * step / n)
    rows[#rows + 1] = string.format("%d,1,%d,%s,%s,0.001,1.5,250.00,%.2f,,%d\n", step, step, bpd, bpd, step * 0.25,
      e and e[2] or 0)
  end
  rows[#rows + 1] = string.format("%d,1,%d,,,,,,%.2f,4.100000,\n", n, n, n * 0.25 + 0.1)
  H.write(path, table.concat(rows))
end

local have_gnuplot = plot.available()
local with_gnuplot = have_gnuplot and it or pending

local tmp, saved_program
before_each(function()
  tmp = H.tmpdir()
  saved_program = plot.program
end)
after_each(function()
  plot.program = saved_program
  H.rmdir(tmp)
end)

describe("plot.available", function()
  it("gives true, or false and a message with the install hint", function()
    local ok, msg = plot.available()
    assert.is_boolean(ok)
    if ok then assert.is_nil(msg) else assert.matches("apt-get install gnuplot-nox", msg, 1, true) end
  end)

  it("gives false and the install hint when the gnuplot program is not there", function()
    plot.program = tmp .. "/no-such-gnuplot"
    local ok, msg = plot.available()
    assert.is_false(ok)
    assert.matches("apt-get install gnuplot-nox", msg, 1, true)
  end)
end)

describe("plot.curve", function()
  with_gnuplot("draws a PNG from a training log, with log-scale y and a title", function()
    training_log(tmp .. "/log.csv")
    local png = tmp .. "/curve.png"
    assert.same({ true }, { plot.curve(tmp .. "/log.csv", png, { title = "Glow's run_1", logy = true }) })
    local bytes = read(png)
    assert.is_true(#bytes > 8)
    assert.equal(PNG_SIGNATURE, bytes:sub(1, 8))
    assert.same({ "curve.png", "log.csv" }, listdir(tmp)) -- no temporary file left beside it
  end)

  with_gnuplot("draws a log that holds only test rows", function()
    H.write(tmp .. "/log.csv", HEADER .. "10,1,10,,,,,,2.50,4.500000,\n20,2,10,,,,,,5.00,4.100000,\n")
    assert.is_true(plot.curve(tmp .. "/log.csv", tmp .. "/curve.png"))
    assert.equal(PNG_SIGNATURE, read(tmp .. "/curve.png"):sub(1, 8))
  end)

  with_gnuplot("draws a log with a skipped step of bits/dim 1.9e6 and a hand-set range", function()
    long_log(tmp .. "/log.csv", 150, { [40] = { "1900000.000000", 1 }, [41] = { "nan", 1 } })
    assert.is_true(plot.curve(tmp .. "/log.csv", tmp .. "/curve.png"))
    assert.is_true(plot.curve(tmp .. "/log.csv", tmp .. "/log.png", { logy = true, range = { 3.5, nil } }))
    assert.equal(PNG_SIGNATURE, read(tmp .. "/curve.png"):sub(1, 8))
    assert.equal(PNG_SIGNATURE, read(tmp .. "/log.png"):sub(1, 8))
  end)

  it("clips the y range to robust percentiles: one huge value among 200 is left outside", function()
    local program, script = recording_gnuplot(tmp)
    plot.program = program
    long_log(tmp .. "/log.csv", 200, { [50] = { "1900000.000000", 0 } })
    assert.is_true(plot.curve(tmp .. "/log.csv", tmp .. "/curve.png"))
    local lo, hi = script_range(script(), "y")
    -- every other value (4.01 .. 5.99, the test figure 4.1) inside, the spike far above
    assert.is_true(lo < 4.01 and lo > 3.5, tostring(lo))
    assert.is_true(hi > 5.99 and hi < 7, tostring(hi))
    -- the spike is still drawn: its line runs off the top
    assert.matches("1900000", read(tmp .. "/seen/train.dat"), 1, true)
    -- by hand: both ends, or one (the other robust)
    assert.is_true(plot.curve(tmp .. "/log.csv", tmp .. "/curve.png", { range = { 0, 100 } }))
    assert.same({ 0, 100 }, { script_range(script(), "y") })
    assert.is_true(plot.curve(tmp .. "/log.csv", tmp .. "/curve.png", { range = { 2 } }))
    lo, hi = script_range(script(), "y")
    assert.equal(2, lo)
    assert.is_true(hi > 5.99 and hi < 7, tostring(hi))
  end)

  it("leaves skipped steps out of the line and marks them along the bottom", function()
    local program, script, seen = recording_gnuplot(tmp)
    plot.program = program
    long_log(tmp .. "/log.csv", 20, { [5] = { "1900000.000000", 1 }, [6] = { "-nan", 1 }, [7] = { "inf", 0 } })
    assert.is_true(plot.curve(tmp .. "/log.csv", tmp .. "/curve.png"))
    local train = read(seen .. "/train.dat")
    assert.is_nil(train:find("1900000", 1, true))
    assert.is_nil(train:find("^5 ") or train:find("\n5 ") or train:find("\n6 ") or train:find("\n7 "))
    assert.equal("5\n6\n7\n", read(seen .. "/skipped.dat"))
    local gp = script()
    assert.matches("title 'skipped steps (3)'", gp, 1, true)
    local lo, hi = script_range(gp, "y")
    assert.is_true(lo > 3 and hi < 7, lo .. ":" .. hi)
    -- the marks sit 3% of the way up the range
    local y = tonumber(gp:match("skipped%.dat' using 1:%(([^)]+)%)"))
    assert.near(lo + 0.03 * (hi - lo), y, 1e-9)
    -- a log without the skipped column (an older one): only the non-finite steps are marked
    local old = {}
    for line in read(tmp .. "/log.csv"):gmatch("[^\n]+") do old[#old + 1] = line:gsub(",[^,]*$", "") end
    H.write(tmp .. "/old.csv", table.concat(old, "\n") .. "\n")
    assert.is_true(plot.curve(tmp .. "/old.csv", tmp .. "/curve.png"))
    assert.equal("6\n7\n", read(seen .. "/skipped.dat"))
    assert.matches("title 'skipped steps (2)'", script(), 1, true)
  end)

  it("gives nil and a message for a missing log", function()
    plot.program = fake_gnuplot(tmp)
    local ok, msg = plot.curve(tmp .. "/missing.csv", tmp .. "/curve.png")
    assert.is_nil(ok)
    assert.matches("missing.csv", msg, 1, true)
    assert.is_nil(read(tmp .. "/curve.png"))
  end)

  it("gives nil and a message for an empty, foreign, malformed or rowless log", function()
    plot.program = fake_gnuplot(tmp)
    local cases = {
      { "", "is empty" },
      { "a,b\n1,2\n", "has no column 'step'" },
      { HEADER .. "1,1,1,abc,,,,,,,\n", "line 2: bpd 'abc' is not a number" },
      { HEADER .. "1,1,1,3.5\n", "line 2 has 4 fields, the header 11" },
      { HEADER, "no row with a finite bits/dim" },
    }
    for _, c in ipairs(cases) do
      H.write(tmp .. "/log.csv", c[1])
      local ok, msg = plot.curve(tmp .. "/log.csv", tmp .. "/curve.png")
      assert.is_nil(ok)
      assert.matches(c[2], msg, 1, true)
    end
  end)

  it("refuses log-scale y over a non-positive bits/dim", function()
    plot.program = fake_gnuplot(tmp)
    H.write(tmp .. "/log.csv", HEADER .. "1,1,1,-0.5,-0.5,0.001,1,1,1,,0\n")
    local ok, msg = plot.curve(tmp .. "/log.csv", tmp .. "/curve.png", { logy = true })
    assert.is_nil(ok)
    assert.matches("logy needs positive bits/dim", msg, 1, true)
  end)

  it("gives nil and gnuplot's stderr when gnuplot fails, and leaves no file", function()
    plot.program = fake_gnuplot(tmp)
    training_log(tmp .. "/log.csv")
    local ok, msg = plot.curve(tmp .. "/log.csv", tmp .. "/curve.png")
    assert.is_nil(ok)
    assert.matches("gnuplot failed", msg, 1, true)
    assert.matches("line 9: undefined variable: oops", msg, 1, true)
    assert.same({ "fake-gnuplot", "log.csv" }, listdir(tmp))
  end)

  it("gives nil and the install hint when gnuplot is not there", function()
    plot.program = tmp .. "/no-such-gnuplot"
    training_log(tmp .. "/log.csv")
    local ok, msg = plot.curve(tmp .. "/log.csv", tmp .. "/curve.png")
    assert.is_nil(ok)
    assert.matches("apt-get install gnuplot-nox", msg, 1, true)
  end)

  it("raises on misuse: a path that is not a string, an unknown option, a bad range", function()
    assert.has_error(function() plot.curve(nil, "x.png") end, "plot.curve: log_csv_path must be a string, got nil")
    assert.has_error(function() plot.curve("log.csv", "x.png", { colour = 1 }) end,
      "plot.curve: unknown option 'colour' (known: height, logy, range, title, width)")
    assert.has_error(function() plot.curve("log.csv", "x.png", { range = { 5, 3 } }) end,
      "plot.curve: range needs lo < hi, got {5, 3}")
    assert.has_error(function() plot.curve("log.csv", "x.png", { range = "3:5" }) end,
      "plot.curve: range must be a table {lo, hi}, got string")
  end)
end)

describe("plot.robust_range", function()
  it("spans every value when none is far off, with 5% of air each side", function()
    local v = {}
    for i = 1, 50 do v[i] = 3 + i / 50 end
    local lo, hi = plot.robust_range(v)
    assert.near(3.02 - 0.049, lo, 1e-12)
    assert.near(4 + 0.049, hi, 1e-12)
  end)

  it("leaves one far-off value among 101 outside, and works on logarithms with logy", function()
    local v = {}
    for i = 1, 100 do v[i] = 4 + (i % 10) / 10 end
    v[101] = 1e6
    local lo, hi = plot.robust_range(v)
    assert.is_true(lo < 4 and hi > 4.9 and hi < 5.5, lo .. ":" .. hi)
    lo, hi = plot.robust_range(v, true)
    assert.is_true(lo < 4 and hi > 4.9 and hi < 5.5, lo .. ":" .. hi)
  end)

  it("gives a span around a single value", function()
    assert.same({ 2 - 0.55, 2 + 0.55 }, { plot.robust_range({ 2, 2, 2 }) })
  end)
end)

describe("plot.parse_range", function()
  it("reads LO:HI, either side left out", function()
    assert.same({ 3.5, 5 }, plot.parse_range("3.5:5"))
    assert.same({ nil, 5 }, plot.parse_range(":5"))
    assert.same({ -1, nil }, plot.parse_range("-1:"))
  end)

  it("gives nil and a message for anything else", function()
    for _, c in ipairs { { "3", "must be LO:HI" }, { "a:5", "finite numbers" }, { "5:3", "LO < HI" },
      { "1:inf", "finite numbers" }, { "1:2:3", "must be LO:HI" } } do
      local r, msg = plot.parse_range(c[1])
      assert.is_nil(r, c[1])
      assert.matches(c[2], msg, 1, true)
    end
  end)
end)

describe("plot.histogram", function()
  local function sets()
    local a, b = {}, {}
    for i = 1, 500 do a[i] = 3 + math.sin(i) end
    for i = 1, 120 do b[i] = 4.2 + 0.5 * math.cos(1.7 * i) end
    return { { name = "Fashion-MNIST test", values = a }, { name = "digits_8x8", values = b } }
  end

  with_gnuplot("draws the sets on one PNG", function()
    local png = tmp .. "/hist.png"
    assert.same({ true }, { plot.histogram(sets(), png, { title = "in and out of distribution", bins = 30 }) })
    local bytes = read(png)
    assert.is_true(#bytes > 8)
    assert.equal(PNG_SIGNATURE, bytes:sub(1, 8))
    assert.same({ "hist.png" }, listdir(tmp))
  end)

  with_gnuplot("takes a tensor of values and a set whose values are all equal", function()
    local s = { { name = "tensor", values = H.glow.Tensor.from({ 1, 2, 3, 2 }, { 4 }) },
      { name = "constant", values = { 2, 2, 2 } } }
    assert.is_true(plot.histogram(s, tmp .. "/hist.png"))
    assert.is_true(plot.histogram({ s[2] }, tmp .. "/hist.png"))
    assert.equal(PNG_SIGNATURE, read(tmp .. "/hist.png"):sub(1, 8))
  end)

  it("spans the robust range of all the sets; the values outside it are counted in the legend", function()
    local program, script, seen = recording_gnuplot(tmp)
    plot.program = program
    local a = {}
    for i = 1, 300 do a[i] = 3 + (i % 30) / 30 end
    a[17] = 250 -- one wild image
    assert.is_true(plot.histogram({ { name = "in", values = a }, { name = "out", values = { 3.5, 3.6 } } },
      tmp .. "/h.png", { bins = 10 }))
    local gp = script()
    local lo = tonumber(gp:match("lo = ([^;]+);"))
    local w = tonumber(gp:match("w = ([^;]+);"))
    assert.near(3, lo, 1e-12)
    -- the top: the 99th percentile (3.967) plus a quarter of the spread, far below 250
    assert.is_true(lo + 10 * w > 3.96 and lo + 10 * w < 4.3, tostring(w))
    assert.matches("in %(mean %d+%.%d+, 300 images, 1 outside the range%)", gp)
    assert.matches("'out (mean 3.5500, 2 images)'", gp, 1, true)
    assert.is_nil(read(seen .. "/set1.dat"):find("250", 1, true))
    -- by hand: a set wholly outside keeps its legend entry
    assert.is_true(plot.histogram({ { name = "in", values = a }, { name = "out", values = { 3.5, 3.6 } } },
      tmp .. "/h.png", { range = { 2.9, 3.4 } }))
    gp = script()
    assert.equal(2.9, tonumber(gp:match("lo = ([^;]+);")))
    assert.matches("NaN with boxes lc rgb '#d62728' title 'out (mean 3.5500, 2 images, 2 outside the range)'", gp, 1,
      true)
  end)

  with_gnuplot("draws a set wholly outside a hand-set range", function()
    local s = { { name = "a", values = { 1, 2, 3 } }, { name = "b", values = { 9, 10 } } }
    assert.is_true(plot.histogram(s, tmp .. "/hist.png", { range = { 0, 4 } }))
    assert.equal(PNG_SIGNATURE, read(tmp .. "/hist.png"):sub(1, 8))
  end)

  it("refuses a non-finite value, naming the set", function()
    plot.program = fake_gnuplot(tmp)
    for _, bad in ipairs { 0 / 0, math.huge, -math.huge } do
      local s = sets()
      s[2].values[5] = bad
      local ok, msg = plot.histogram(s, tmp .. "/hist.png")
      assert.is_nil(ok)
      assert.matches("the set 'digits_8x8' has a non-finite value", msg, 1, true)
    end
    assert.same({ "fake-gnuplot" }, listdir(tmp))
  end)

  it("refuses a set without values", function()
    plot.program = fake_gnuplot(tmp)
    local ok, msg = plot.histogram({ { name = "none", values = {} } }, tmp .. "/hist.png")
    assert.is_nil(ok)
    assert.matches("the set 'none' has no values", msg, 1, true)
  end)

  it("gives nil and gnuplot's stderr when gnuplot fails", function()
    plot.program = fake_gnuplot(tmp)
    local ok, msg = plot.histogram(sets(), tmp .. "/hist.png")
    assert.is_nil(ok)
    assert.matches("line 9: undefined variable: oops", msg, 1, true)
    assert.same({ "fake-gnuplot" }, listdir(tmp))
  end)

  it("raises on misuse: no sets, a set without a name, a value that is not a number, bad bins", function()
    assert.has_error(function() plot.histogram({}, "x.png") end,
      "plot.histogram: sets must be a non-empty array of sets")
    assert.has_error(function() plot.histogram({ { values = { 1 } } }, "x.png") end,
      "plot.histogram: set 1: name must be a string, got nil")
    plot.program = fake_gnuplot(tmp)
    assert.has_error(function() plot.histogram({ { name = "s", values = { 1, "2" } } }, "x.png") end,
      "plot.histogram: set 's': value 2 must be a number, got string")
    assert.has_error(function() plot.histogram(sets(), "x.png", { bins = 0 }) end,
      "plot.histogram: bins must be an integer in 1..100000, got 0")
  end)
end)
