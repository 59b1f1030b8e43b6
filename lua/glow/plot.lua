--- glow.plot: figures drawn by gnuplot (Debian package gnuplot-nox).
---
---   plot.available() -> true | false, message
---   plot.curve(log_csv_path, png_path, {title =, logy = false, range = {lo, hi}, width = 900,
---       height = 600}) -> true | nil, message
---   plot.histogram({{name = "Fashion-MNIST test", values = {...}}, ...}, png_path,
---       {title =, bins = 50, range = {lo, hi}, width = 900, height = 600}) -> true | nil, message
---   plot.robust_range(values [, logy]) -> lo, hi
---   plot.parse_range("LO:HI") -> {lo, hi} | nil, message
---
--- curve reads the CSV log that glow.train writes (columns step, epoch,
--- batch, bpd, loss, lr, grad_norm, images_per_s, wall_s, test_bpd,
--- skipped: a row per step with bpd, a row per evaluation with test_bpd) and
--- draws the train bits/dim against the step as a line, the test bits/dim as
--- points. Skipped steps (skipped = 1: a non-finite or exploding loss, whose
--- bits/dim may be 1.9e6) and steps whose bits/dim is not finite are left
--- out of the line and marked by triangles along the bottom ("skipped
--- steps" in the legend); a log without the skipped column (an older one)
--- leaves out only the non-finite ones.
--- histogram draws the per-image bits/dim of each set on the same bins, each
--- normalized to fractions of its own images so sets of different sizes
--- compare, the legend naming each set with its mean; values may be a Lua
--- array of numbers or a tensor.
---
--- The bits/dim axis (the curve's y, the histogram's x) spans robust_range
--- of the values drawn, so one wild value cannot squash the rest: from the
--- 1st to the 99th percentile (glow.stats.percentile), widened by a quarter
--- of their distance on each side but never past the smallest and largest
--- value, then by 5% for air (with logy, all of it on the logarithms). With
--- 101 values or more, one far-off value falls outside. range = {lo, hi}
--- sets it by hand (either may be nil: that end stays robust). The curve's
--- line runs off the plot where it leaves the range; a histogram leaves the
--- values outside it out of its bins (each still counts in its set's mean and
--- fractions), and the legend says how many.
---
--- Misuse (a path that is not a string, an unknown option, a set without a
--- name) raises; anything else (no gnuplot, a missing, empty or malformed
--- log, a non-finite value, gnuplot failing) returns nil and a message. The
--- data files and the gnuplot script go into a temporary folder that is
--- removed after; the PNG is written to a temporary file beside png_path and
--- renamed into place. plot.program names the gnuplot to run (default
--- "gnuplot", found on PATH). The pngcairo terminal is used when gnuplot has
--- it, else libgd's png.
local util = require "glow.util"
local stats = require "glow.stats"

local M = { program = "gnuplot" }

local HINT = "apt-get install gnuplot-nox"
local COLOURS = { "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2" }
local CURVE_OPTS = { title = true, logy = true, range = true, width = true, height = true }
local HIST_OPTS = { title = true, bins = true, range = true, width = true, height = true }
local PNG_SIGNATURE = "\137PNG\r\n\26\n"

--- A shell command's (ok, "exit" | "signal", code), as os.execute gives, but
--- through popen: C's system() ignores SIGINT in the caller while the child
--- runs, so a Ctrl-C sent to a training process drawing its curve would be
--- lost; popen leaves the caller's handlers alone.
local function run_shell(cmd)
  local p = io.popen(cmd, "r")
  if not p then return nil, "exit", 127 end
  p:read("a")
  return p:close()
end

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

--- A gnuplot single-quoted string (no escapes inside; '' stands for ').
local function gp_quote(s) return "'" .. s:gsub("[\r\n]", " "):gsub("'", "''") .. "'" end

local function finite(v) return v == v and v ~= math.huge and v ~= -math.huge end

------------------------------------------------------------------- ranges

--- The robust span of values (a non-empty array of finite numbers; with
--- logy, positive): see the top of the file.
--- air: the share of the span added on each side (0.05 for robust_range).
local function robust(values, logy, air)
  local v = values
  if logy then
    v = {}
    for i, x in ipairs(values) do v[i] = math.log(x) end
  end
  local s = stats.sorted(v)
  local p1, p99 = stats.percentile_sorted(s, 1), stats.percentile_sorted(s, 99)
  local margin = 0.25 * (p99 - p1)
  local lo, hi = math.max(s[1], p1 - margin), math.min(s[#s], p99 + margin)
  if hi - lo < 1e-9 * math.max(1, math.abs(lo)) then -- one value: a span around it
    local w = logy and 0.1 or 0.5
    lo, hi = lo - w, hi + w
  end
  lo, hi = lo - air * (hi - lo), hi + air * (hi - lo)
  if logy then return math.exp(lo), math.exp(hi) end
  return lo, hi
end

function M.robust_range(values, logy) return robust(values, logy, 0.05) end

--- "LO:HI" (either side may be empty: that end is left to robust_range)
--- as {lo, hi}, or nil and what is wrong.
function M.parse_range(text)
  local a, b = tostring(text):match("^%s*([^:]-)%s*:%s*([^:]-)%s*$")
  if not a then return nil, string.format("a range must be LO:HI (either may be left out), got '%s'", text) end
  local lo, hi = tonumber(a), tonumber(b)
  if (a ~= "" and not (lo and finite(lo))) or (b ~= "" and not (hi and finite(hi))) then
    return nil, string.format("a range must be LO:HI with finite numbers, got '%s'", text)
  end
  if lo and hi and lo >= hi then
    return nil, string.format("a range LO:HI needs LO < HI, got '%s'", text)
  end
  return { lo, hi }
end

--- opts.range checked (misuse raises): lo, hi (either may be nil).
local function range_opt(r, what)
  if r == nil then return nil, nil end
  if type(r) ~= "table" then error(what .. ": range must be a table {lo, hi}, got " .. type(r), 0) end
  local lo, hi = r[1], r[2]
  for _, x in ipairs { { lo, "range[1]" }, { hi, "range[2]" } } do
    if x[1] ~= nil and (type(x[1]) ~= "number" or not finite(x[1])) then
      error(string.format("%s: %s must be a finite number or nil, got %s", what, x[2], tostring(x[1])), 0)
    end
  end
  if lo and hi and lo >= hi then
    error(string.format("%s: range needs lo < hi, got {%s, %s}", what, tostring(lo), tostring(hi)), 0)
  end
  return lo, hi
end

--- The span drawn: opts.range's ends where given, robust_range's for the
--- others (an end given past the robust other end keeps the robust width);
--- nil and a message when logy meets an end at or below 0.
local function span(values, logy, lo, hi, what, air)
  if not (lo and hi) then
    local rlo, rhi = robust(values, logy, air)
    if lo and lo >= rhi then
      hi = logy and lo * (rhi / rlo) or lo + (rhi - rlo)
    elseif hi and hi <= rlo then
      lo = logy and hi / (rhi / rlo) or hi - (rhi - rlo)
    end
    lo, hi = lo or rlo, hi or rhi
  end
  if logy and lo <= 0 then return nil, string.format("%s: logy needs a range above 0, got %g", what, lo) end
  return lo, hi
end

------------------------------------------------------------------ gnuplot

local terminals = {} -- program -> "pngcairo" | "png" | false (none)

--- The PNG terminal the program has, or nil and a message.
local function terminal()
  local prog = M.program
  local t = terminals[prog]
  if t == nil then
    if not run_shell("command -v " .. shell_quote(prog) .. " >/dev/null 2>&1") then
      return nil, string.format("gnuplot not found (%s): install it (Debian: %s)", prog, HINT)
    end
    local p = io.popen(shell_quote(prog) .. " -e 'set terminal' 2>&1")
    local list = p and p:read("a") or ""
    if p then p:close() end
    t = list:find("%f[%w]pngcairo%f[%W]") and "pngcairo" or list:find("%f[%w]png%f[%W]") and "png" or false
    terminals[prog] = t
  end
  if not t then
    return nil, string.format("%s has neither the pngcairo nor the png terminal: install %s", prog, HINT)
  end
  return t
end

function M.available()
  local t, err = terminal()
  if t then return true end
  return false, err
end

--- The first lines of a script: the terminal with the size, no enhanced text
--- (so underscores in names stay underscores).
local function preamble(term, opts, what)
  local w = util.int_opt(opts.width, 900, what .. ": width", 16, 16384)
  local h = util.int_opt(opts.height, 600, what .. ": height", 16, 16384)
  local lines = {
    term == "pngcairo" and string.format("set terminal pngcairo size %d,%d noenhanced font 'sans,10'", w, h)
      or string.format("set terminal png truecolor size %d,%d noenhanced", w, h),
  }
  if opts.title ~= nil then
    if type(opts.title) ~= "string" then error(what .. ": title must be a string, got " .. type(opts.title), 0) end
    lines[#lines + 1] = "set title " .. gp_quote(opts.title)
  end
  return lines
end

--- A scratch folder for one figure: add(name) gives a path in it and
--- remembers it; clean() removes all it made.
local function scratch()
  local base = os.tmpname() -- made by mkstemp: the name is ours
  local dir = base .. ".d"
  local s = { dir = dir, base = base, files = {} }
  function s.path(name)
    local p = dir .. "/" .. name
    s.files[#s.files + 1] = p
    return p
  end
  function s.clean()
    for _, p in ipairs(s.files) do os.remove(p) end
    if s.made then os.remove(dir) end
    os.remove(base)
  end
  if not run_shell("mkdir -m 700 -- " .. shell_quote(dir) .. " 2>/dev/null") then
    os.remove(base)
    return nil, "cannot make a temporary folder " .. dir
  end
  s.made = true
  return s
end

--- Run gnuplot on the script (lines) and put the PNG at png_path.
local function draw(tmp, lines, png_path, what)
  local script = tmp.path("plot.gp")
  local f, err = io.open(script, "w")
  if not f then return nil, string.format("%s: cannot write %s: %s", what, script, err) end
  f:write(table.concat(lines, "\n"), "\n")
  if not f:close() then return nil, string.format("%s: cannot write %s", what, script) end
  local part = png_path .. "." .. tmp.base:match("[^/]*$") .. ".part"
  f, err = io.open(part, "wb") -- opened here for a plain message when png_path's folder is not writable
  if not f then return nil, string.format("%s: cannot write %s: %s", what, png_path, err) end
  f:close()
  local errfile = tmp.path("gnuplot.err")
  local ok, how, code = run_shell(shell_quote(M.program) .. " " .. shell_quote(script) .. " >" .. shell_quote(part)
    .. " 2>" .. shell_quote(errfile))
  local said = ""
  local ef = io.open(errfile, "r")
  if ef then said = ef:read("a"):gsub("%s+$", ""); ef:close() end
  if ok then
    f = io.open(part, "rb")
    local head = f and f:read(8)
    if f then f:close() end
    if head ~= PNG_SIGNATURE then ok, how, code = nil, "output", "no PNG" end
  end
  if not ok then
    os.remove(part)
    return nil, string.format("%s: gnuplot failed (%s %s)%s", what, how, tostring(code),
      said ~= "" and ": " .. said or "")
  end
  local moved, merr = os.rename(part, png_path)
  if not moved then
    os.remove(part)
    return nil, string.format("%s: cannot write %s: %s", what, png_path, merr)
  end
  return true
end

--- Run body(tmp) with a scratch folder that is removed after, whatever happens.
local function with_scratch(body)
  local tmp, err = scratch()
  if not tmp then return nil, err end
  local res = table.pack(pcall(body, tmp))
  tmp.clean()
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

-------------------------------------------------------------------- curve

--- Split the log into train.dat (step, bpd), test.dat (step, test_bpd) and
--- skipped.dat (the steps skipped: skipped = 1, or a bits/dim that is not
--- finite). Returns {n_train, n_test, n_skipped, values (every bits/dim
--- drawn), lo (the smallest)}, or nil and a message.
local function split_log(path, files, what)
  local f, err = io.open(path, "r")
  if not f then return nil, string.format("%s: cannot read the log %s", what, err) end
  local header = f:read("l")
  if not header or header:match("^%s*$") then
    f:close()
    return nil, string.format("%s: the log %s is empty", what, path)
  end
  local col, ncol = {}, 0
  for name in (header:gsub("\r$", "") .. ","):gmatch("([^,]*),") do
    ncol = ncol + 1
    col[name] = ncol
  end
  for _, need in ipairs { "step", "bpd", "test_bpd" } do
    if not col[need] then
      f:close()
      return nil, string.format("%s: %s is not a training log: its header has no column '%s' (%s)", what, path,
        need, header)
    end
  end
  local out = {}
  for _, k in ipairs { "train", "test", "skipped" } do
    local h = io.open(files[k], "w")
    if not h then
      f:close()
      for _, o in pairs(out) do o:close() end
      return nil, what .. ": cannot write the data files in " .. files[k]:match("^(.*)/")
    end
    out[k] = h
  end
  local r = { n_train = 0, n_test = 0, n_skipped = 0, values = {}, lo = math.huge }
  local lineno, problem = 1, nil
  for line in f:lines() do
    lineno = lineno + 1
    line = line:gsub("\r$", "")
    if line ~= "" then
      local fields = {}
      for v in (line .. ","):gmatch("([^,]*),") do fields[#fields + 1] = v end
      if #fields ~= ncol then
        problem = string.format("line %d has %d fields, the header %d", lineno, #fields, ncol)
        break
      end
      local step = tonumber(fields[col.step])
      if not step then
        problem = string.format("line %d: the step '%s' is not a number", lineno, fields[col.step])
        break
      end
      local skipped = col.skipped and tonumber(fields[col.skipped]) == 1
      for _, c in ipairs { { "bpd", "train", "n_train" }, { "test_bpd", "test", "n_test" } } do
        local s = fields[col[c[1]]]
        if s ~= "" then
          local v = tonumber(s)
          if not v and not s:match("^%s*[-+]?nan%s*$") and not s:match("^%s*[-+]?inf%s*$") then
            problem = string.format("line %d: %s '%s' is not a number", lineno, c[1], s)
            break
          end
          if c[1] == "bpd" and (skipped or not (v and finite(v))) then -- a skipped step: marked, not drawn
            out.skipped:write(string.format("%.17g\n", step))
            r.n_skipped = r.n_skipped + 1
          elseif v and finite(v) then
            out[c[2]]:write(string.format("%.17g %.17g\n", step, v))
            r[c[3]] = r[c[3]] + 1
            r.values[#r.values + 1] = v
            if v < r.lo then r.lo = v end
          end
        end
      end
      if problem then break end
    end
  end
  f:close()
  local closed = true
  for _, o in pairs(out) do closed = o:close() and closed end
  if problem then return nil, string.format("%s: malformed log %s: %s", what, path, problem) end
  if not closed then return nil, what .. ": cannot write the data files" end
  if #r.values == 0 then
    return nil, string.format("%s: the log %s has no row with a finite bits/dim%s", what, path,
      r.n_skipped > 0 and string.format(" (%d skipped steps)", r.n_skipped) or "")
  end
  return r
end

function M.curve(log_csv_path, png_path, opts)
  local what = "plot.curve"
  if type(log_csv_path) ~= "string" then
    error(what .. ": log_csv_path must be a string, got " .. type(log_csv_path), 0)
  end
  if type(png_path) ~= "string" then error(what .. ": png_path must be a string, got " .. type(png_path), 0) end
  opts = util.check_options(opts, CURVE_OPTS, what)
  local rlo, rhi = range_opt(opts.range, what)
  local term, terr = terminal()
  if not term then return nil, what .. ": " .. terr end
  local lines = preamble(term, opts, what) -- checks the options before any file is touched
  return with_scratch(function(tmp)
    local files = { train = tmp.path("train.dat"), test = tmp.path("test.dat"), skipped = tmp.path("skipped.dat") }
    local r, msg = split_log(log_csv_path, files, what)
    if not r then return nil, msg end
    if opts.logy and r.lo <= 0 then
      return nil, string.format("%s: logy needs positive bits/dim, the log %s has %g", what, log_csv_path, r.lo)
    end
    local lo, hi = span(r.values, opts.logy, rlo, rhi, what, 0.05)
    if not lo then return nil, hi end
    for _, l in ipairs { "set xlabel 'step'", "set ylabel 'bits/dim'", "set grid", "set key top right",
      string.format("set yrange [%.17g:%.17g]", lo, hi) } do
      lines[#lines + 1] = l
    end
    if opts.logy then lines[#lines + 1] = "set logscale y" end
    local plots = {}
    if r.n_train > 0 then
      plots[#plots + 1] = gp_quote(files.train) .. " using 1:2 with lines lw 1.5 lc rgb '#1f77b4' title 'train'"
    end
    if r.n_test > 0 then
      plots[#plots + 1] = gp_quote(files.test) .. " using 1:2 with points pt 7 ps 1.3 lc rgb '#d62728' title 'test'"
    end
    if r.n_skipped > 0 then
      -- along the bottom: 3% of the way up (of the logarithms with logy)
      local y = opts.logy and lo * (hi / lo) ^ 0.03 or lo + 0.03 * (hi - lo)
      plots[#plots + 1] = string.format("%s using 1:(%.17g) with points pt 9 ps 1.2 lc rgb '#ff7f0e' title %s",
        gp_quote(files.skipped), y, gp_quote(string.format("skipped steps (%d)", r.n_skipped)))
    end
    lines[#lines + 1] = "plot " .. table.concat(plots, ", \\\n     ")
    return draw(tmp, lines, png_path, what)
  end)
end

---------------------------------------------------------------- histogram

--- Check the sets' shape (misuse raises) and give their names and values.
local function check_sets(sets, what)
  if type(sets) ~= "table" or #sets == 0 then error(what .. ": sets must be a non-empty array of sets", 0) end
  local out = {}
  for i, s in ipairs(sets) do
    if type(s) ~= "table" then error(string.format("%s: set %d must be a table, got %s", what, i, type(s)), 0) end
    if type(s.name) ~= "string" then
      error(string.format("%s: set %d: name must be a string, got %s", what, i, type(s.name)), 0)
    end
    local values = s.values
    if util.is_tensor(values) then values = values:totable() end
    if type(values) ~= "table" then
      error(string.format("%s: set %d (%s): values must be an array of numbers or a tensor, got %s", what, i,
        s.name, type(values)), 0)
    end
    out[i] = { name = s.name, values = values }
  end
  return out
end

function M.histogram(sets, png_path, opts)
  local what = "plot.histogram"
  sets = check_sets(sets, what)
  if type(png_path) ~= "string" then error(what .. ": png_path must be a string, got " .. type(png_path), 0) end
  opts = util.check_options(opts, HIST_OPTS, what)
  local bins = util.int_opt(opts.bins, 50, what .. ": bins", 1, 100000)
  local rlo, rhi = range_opt(opts.range, what)
  local term, terr = terminal()
  if not term then return nil, what .. ": " .. terr end
  local lines = preamble(term, opts, what)
  -- every value checked, each set's mean, and all of them for the range
  local all = {}
  for _, s in ipairs(sets) do
    local vals, n, sum = s.values, #s.values, 0
    if n == 0 then return nil, string.format("%s: the set '%s' has no values", what, s.name) end
    for j = 1, n do
      local v = vals[j]
      if type(v) ~= "number" then
        error(string.format("%s: set '%s': value %d must be a number, got %s", what, s.name, j, type(v)), 0)
      end
      if not finite(v) then
        return nil, string.format("%s: the set '%s' has a non-finite value (%s at %d)", what, s.name, tostring(v), j)
      end
      sum = sum + v
      all[#all + 1] = v
    end
    s.n, s.mean = n, sum / n
  end
  -- the bins span the robust range (no air: the x range adds a bin each side)
  local lo, hi = span(all, false, rlo, rhi, what, 0)
  return with_scratch(function(tmp)
    for i, s in ipairs(sets) do
      s.path = tmp.path(string.format("set%d.dat", i))
      local f, err = io.open(s.path, "w")
      if not f then return nil, string.format("%s: cannot write %s", what, err) end
      -- the values inside [lo, hi], formatted a chunk at a time
      local inside, vals = {}, s.values
      s.outside = 0
      for j = 1, s.n do
        local v = vals[j]
        if v >= lo and v <= hi then inside[#inside + 1] = v else s.outside = s.outside + 1 end
      end
      for k = 1, #inside, 4096 do
        local last = math.min(k + 4095, #inside)
        f:write(string.format(string.rep("%.17g\n", last - k + 1), table.unpack(inside, k, last)))
      end
      if not f:close() then return nil, string.format("%s: cannot write %s", what, s.path) end
    end
    local width = (hi - lo) / bins
    -- bin(x): the centre of x's bin; the largest value falls in the last bin (and
    -- a value that rounding puts a hair outside [lo, hi] in the end bin)
    lines[#lines + 1] = string.format("lo = %.17g; w = %.17g; nb = %d", lo, width, bins)
    lines[#lines + 1] = "idx(x) = floor((x - lo) / w)"
    lines[#lines + 1] = "bin(x) = lo + w * ((idx(x) < 0 ? 0 : idx(x) < nb ? idx(x) : nb - 1) + 0.5)"
    for _, l in ipairs {
      "set xlabel 'bits/dim'", "set ylabel 'fraction of images'", "set grid", "set key top right",
      "set style fill transparent solid 0.35 border", "set boxwidth w absolute",
      string.format("set xrange [%.17g:%.17g]", lo - width, hi + width), "set yrange [0:*]",
      string.format("set offsets 0, 0, graph %.2f, 0", 0.06 * #sets + 0.04),
    } do lines[#lines + 1] = l end
    local plots = {}
    for i, s in ipairs(sets) do
      local colour = COLOURS[(i - 1) % #COLOURS + 1]
      local title = string.format("%s (mean %.4f, %d images%s)", s.name, s.mean, s.n,
        s.outside > 0 and string.format(", %d outside the range", s.outside) or "")
      -- a set with every value outside the range: an empty file, which gnuplot
      -- refuses; its legend entry stays
      local src = s.outside < s.n and gp_quote(s.path) .. " using (bin($1)):(1.0/" .. s.n .. ") smooth frequency"
        or "NaN"
      plots[i] = string.format("%s with boxes lc rgb '%s' title %s", src, colour, gp_quote(title))
    end
    lines[#lines + 1] = "plot " .. table.concat(plots, ", \\\n     ")
    return draw(tmp, lines, png_path, what)
  end)
end

return M
