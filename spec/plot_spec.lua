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

  it("raises on misuse: a path that is not a string, an unknown option", function()
    assert.has_error(function() plot.curve(nil, "x.png") end, "plot.curve: log_csv_path must be a string, got nil")
    assert.has_error(function() plot.curve("log.csv", "x.png", { colour = 1 }) end,
      "plot.curve: unknown option 'colour' (known: height, logy, title, width)")
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
