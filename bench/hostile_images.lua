--- Run by bench/hostile_images.sh: the image folders an attacker would hand
--- `glow pack` and `glow eval`, each case one command under /usr/bin/time -v:
--- its exit code, the first skip line it printed (else its last line: the
--- error, or what it wrote), its wall time (one run) and its peak
--- resident set (ru_maxrss). Every case must end (a skip line or a one-line
--- error) within 30 s at a peak under 512 MiB. With an older build (OLD, a
--- tree with lua/ and build/) the same cases run there too, for comparison;
--- those that need an option it lacks are left out, and it gets 120 s.
---
---   lua5.4 bench/hostile_images.lua WORKDIR [OLD_NAME OLD_DIR]
package.path = "bench/?.lua;lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
local bench = require "bench_util"
local glow = require "glow"
local F = require "spec.hostile_files"

local work, old_name, old_dir = arg[1], arg[2], arg[3]
assert(work, "usage: lua5.4 bench/hostile_images.lua WORKDIR [OLD_NAME OLD_DIR]")
os.execute("rm -rf '" .. work .. "' && mkdir -p '" .. work .. "'")

local function synth(path, ...) assert(glow.core.synth_image(path, ...)) end

-- a folder holding one ordinary image and the given files
local function folder(name, files)
  local dir = work .. "/" .. name
  os.execute("mkdir -p '" .. dir .. "'")
  synth(dir .. "/ok.png", "png", 48, 64, 3, "smooth")
  for file, make in pairs(files) do make(dir .. "/" .. file) end
  return dir
end

local function jpeg(h, w, c, opts) return function(path) F.write(path, F.jpeg_flat(h, w, c, opts)) end end
local function png(h, w, c, interlaced)
  return function(path) synth(path, "png", h, w, c, "zero", 90, interlaced) end
end

-- a checkpoint for glow eval: a tiny untrained model of 16x16 RGB images
local ckpt = work .. "/model.safetensors"
do
  local m = glow.Glow { shape = { 16, 16, 3 }, levels = 1, depth = 1, width = 4 }
  m:initialize(glow.randn({ 4, 16, 16, 3 }, 1, 0.2))
  assert(m:save(ckpt))
end

io.stderr:write("making the files ...\n")
local t0 = os.clock()
local cases = {
  { "1a: progressive 16384x16384 JPEG (0.8 MiB)", "pack", folder("prog16k", { ["p.jpg"] = jpeg(16384, 16384, 3,
    { progressive = true }) }) },
  { "1b: two baseline 16384x16384 JPEGs (3.9 MiB each)", "eval", folder("base16k", {
    ["a.jpg"] = jpeg(16384, 16384, 3), ["b.jpg"] = jpeg(16384, 16384, 3) }) },
  { "1c: 20000x20000 RGB PNG (1.1 MiB)", "pack", folder("png20k", { ["z.png"] = png(20000, 20000, 3) }) },
  { "2: progressive 8192x8192 JPEG, 1000 scans", "pack", folder("scans", { ["s.jpg"] = jpeg(8192, 8192, 3,
    { progressive = true, ac_scans = 999 }) }) },
  { "3: PNG claiming 100000x100000, padded (29 MiB)", "pack", folder("lie", { ["a_padded.png"] = function(path)
    synth(path .. ".src", "png", 32, 32, 3, "smooth")
    F.write(path, F.png_claiming(F.read(path .. ".src"), 100000, 100000, 29 * 2 ^ 20))
    os.remove(path .. ".src")
  end }) },
  { "4: dangling link and a loop of links, --strict", "pack --strict", folder("links", {
    ["gone.png"] = function(path) assert(os.execute("ln -s nowhere.png '" .. path .. "'")) end,
    ["loop.jpg"] = function(path) assert(os.execute("ln -s loop.jpg '" .. path .. "'")) end }) },
  { "4: the same without --strict", "pack", work .. "/links" },
  -- within the limit: what is held is bounded all the same
  { "progressive 9000x9000 JPEG (81 Mpx)", "pack", folder("prog9k", { ["p.jpg"] = jpeg(9000, 9000, 3,
    { progressive = true }) }) },
  { "two progressive 9000x9000 JPEGs, 2 threads", "eval", folder("prog9k2", {
    ["p.jpg"] = jpeg(9000, 9000, 3, { progressive = true }),
    ["q.jpg"] = jpeg(9000, 9000, 3, { progressive = true }) }) },
  { "baseline 9000x9000 JPEG", "pack", folder("base9k", { ["b.jpg"] = jpeg(9000, 9000, 3) }) },
  { "9000x9000 RGB PNG", "pack", folder("png9k", { ["z.png"] = png(9000, 9000, 3) }) },
  { "9000x9000 RGB PNG, interlaced", "pack", folder("png9ki", { ["z.png"] = png(9000, 9000, 3, true) }) },
  { "1c with --max-pixels 400000000", "pack --max-pixels 400000000", work .. "/png20k", new_only = true },
}
io.stderr:write(string.format("made in %.1f s of CPU\n", os.clock() - t0))

local sides = { { name = "now", root = ".", cpath = "build", limit = 30 } }
if old_name then sides[2] = { name = old_name, root = old_dir, cpath = old_dir .. "/build", limit = 120 } end

local function run(side, case)
  local what, extra = case[2]:match("^(%a+)%s*(.*)$")
  local args
  if what == "pack" then
    args = string.format("pack '%s' '%s/out.glowpack' --size 64 %s", case[3], work, extra)
  else
    args = string.format("eval '%s' '%s' %s", ckpt, case[3], extra)
  end
  local log = work .. "/time.txt"
  local cmd = string.format("cd '%s' && OMP_NUM_THREADS=2 LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='%s/?.so;;' "
    .. "timeout %d /usr/bin/time -v -o '%s' lua5.4 lua/bin/glow %s 2>&1", side.root, side.cpath, side.limit, log, args)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local _, _, code = p:close()
  local t = F.read(log)
  local kb = tonumber(t:match("Maximum resident set size %(kbytes%): (%d+)"))
  local m, s = t:match("Elapsed %(wall clock%) time %(h:mm:ss or m:ss%): (%d+):([%d.]+)")
  local secs = m and (tonumber(m) * 60 + tonumber(s)) or -1
  local lines, said = {}, nil
  for l in out:gmatch("[^\n]+") do
    lines[#lines + 1] = l
    -- what it said of the hostile files: the first skip line
    if not said and l:match("skipped /") then said = l end
  end
  -- else its error (its last line), or what it printed last
  said = (said or lines[#lines] or ""):gsub(work:gsub("%p", "%%%0") .. "/", "")
  if code == 124 then said = "timed out after " .. side.limit .. " s" end
  return { code = code, secs = secs, mib = kb and kb / 1024 or -1, said = said, lines = lines }
end

local results = {}
for i, case in ipairs(cases) do
  results[i] = {}
  for k, side in ipairs(sides) do
    if k == 1 or not case.new_only then
      local r = run(side, case)
      results[i][k] = r
      io.stderr:write(string.format("%s [%s]: exit %s, %.2f s, %.0f MiB\n", case[1], side.name, tostring(r.code),
        r.secs, r.mib))
      for _, l in ipairs(r.lines) do io.stderr:write("    ", l, "\n") end
    end
  end
end

print(string.format("%s; peak resident set (/usr/bin/time -v) and wall time of each command; OMP_NUM_THREADS=2",
  bench.cpu_model()))
print()
local head = "| case | command | now: exit, s, peak MiB | now: what it said first |"
local rule = "|---|---|---|---|"
if old_name then
  head = head .. " " .. old_name .. ": exit, s, peak MiB |"
  rule = rule .. "---|"
end
print(head)
print(rule)
local bad = 0
for i, case in ipairs(cases) do
  local r = results[i][1]
  local ok = r.secs < 30 and r.mib < 512 and r.code ~= 124
  if not ok then bad = bad + 1 end
  local row = string.format("| %s | glow %s | %s, %.2f, %.0f%s | %s |", case[1], case[2], tostring(r.code), r.secs,
    r.mib, ok and "" or " OVER", (r.said:gsub("|", "\\|")))
  if old_name then
    local o = results[i][2]
    row = row .. (o and string.format(" %s, %.2f, %.0f |", o.code == 124 and "killed" or tostring(o.code), o.secs,
      o.mib) or " (no such option) |")
  end
  print(row)
end
print()
print(bad == 0 and "every case ended within 30 s at a peak under 512 MiB"
  or string.format("%d case(s) over 30 s or 512 MiB", bad))
os.exit(bad == 0 and 0 or 1)
