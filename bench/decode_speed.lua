--- Run by bench/decode_speed.sh: packing a folder of ordinary photos with
--- this tree against an older build, the two alternating in every round;
--- each figure the median wall time of --reps rounds, with the peak
--- resident set of that run (/usr/bin/time -v).
---
--- The photos, made once in WORKDIR/photos by glow's synthetic writer
--- (seeded): --n JPEGs of 1 to 4 megapixels (sizes drawn at random, aspect
--- ratios 4:3, 3:2, 1:1, 3:4, 2:3; smooth colour with per-pixel noise, like
--- a photo's grain; quality 90; one in five progressive), and --png PNGs of
--- 1 to 2 megapixels in WORKDIR/pngs.
---
---   lua5.4 bench/decode_speed.lua WORKDIR OLD_NAME OLD_DIR [--n 200] [--png 40] [--reps 3]
package.path = "bench/?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
local bench = require "bench_util"
local glow = require "glow"

local work, old_name, old_dir = arg[1], arg[2], arg[3]
assert(old_dir, "usage: lua5.4 bench/decode_speed.lua WORKDIR OLD_NAME OLD_DIR [--n 200] [--png 40] [--reps 3]")
local rest = {}
for i = 4, #arg do rest[#rest + 1] = arg[i] end
local opts = bench.options("decode_speed.lua", { n = 200, png = 40, reps = 3 }, rest)

-- a seeded generator (splitmix64) for the sizes
local state = 0x2545F4914F6CDD1D
local function uniform()
  state = state + 0x9E3779B97F4A7C15
  local z = state
  z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
  z = (z ~ (z >> 27)) * 0x94D049BB133111EB
  z = z ~ (z >> 31)
  return ((z >> 11) & ((1 << 53) - 1)) / 2 ^ 53
end

local ASPECTS = { 4 / 3, 3 / 2, 1, 3 / 4, 2 / 3 }
local function make(dir, n, lo, hi, format)
  local stamp = string.format("%s/.made-%d-%s", dir, n, format)
  if io.open(stamp) then return end
  os.execute("rm -rf '" .. dir .. "' && mkdir -p '" .. dir .. "'")
  local px = 0
  for i = 1, n do
    local mp = (lo + (hi - lo) * uniform()) * 1e6
    local aspect = ASPECTS[1 + math.floor(uniform() * #ASPECTS)]
    local h = math.floor(math.sqrt(mp / aspect) + 0.5)
    local w = math.floor(h * aspect + 0.5)
    px = px + h * w
    local path = string.format("%s/%03d.%s", dir, i, format == "jpeg" and "jpg" or "png")
    assert(glow.core.synth_image(path, format, h, w, 3, "photo", 90, format == "jpeg" and i % 5 == 0, i))
  end
  io.open(stamp, "w"):close()
  io.stderr:write(string.format("made %d %s files, %.0f megapixels in all\n", n, format, px / 1e6))
end
make(work .. "/photos", opts.n, 1, 4, "jpeg")
if opts.png > 0 then make(work .. "/pngs", opts.png, 1, 2, "png") end

local sides = { { name = old_name, root = old_dir, cpath = old_dir .. "/build" },
  { name = "now", root = ".", cpath = "build" } }

-- wall seconds and peak MiB of one glow command (args) or Lua chunk (lua)
local function run(side, args, lua)
  local log = work .. "/time.txt"
  local what = lua and ("-e '" .. lua .. "'") or ("lua/bin/glow " .. args)
  local cmd = string.format("cd '%s' && OMP_NUM_THREADS=2 LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='%s/?.so;;' "
    .. "/usr/bin/time -v -o '%s' lua5.4 %s >/dev/null 2>&1", side.root, side.cpath, log, what)
  assert(os.execute(cmd), "failed: " .. cmd)
  local f = assert(io.open(log))
  local t = f:read("a")
  f:close()
  local m, s = t:match("Elapsed %(wall clock%) time %(h:mm:ss or m:ss%): (%d+):([%d.]+)")
  return tonumber(m) * 60 + tonumber(s), tonumber(t:match("Maximum resident set size %(kbytes%): (%d+)")) / 1024
end

local out = work .. "/out.glowpack"
local jobs = {
  { "pack " .. opts.n .. " JPEGs --size 64", string.format("pack '%s/photos' '%s' --size 64", work, out) },
  { "pack " .. opts.n .. " JPEGs --size 256", string.format("pack '%s/photos' '%s' --size 256", work, out) },
  { "load " .. opts.n .. " JPEGs at 64 (glow.data.images, 2 threads)", nil,
    string.format("assert(require(\"glow\").data.images(\"%s/photos\", {size = 64}))", work) },
}
if opts.png > 0 then
  jobs[#jobs + 1] = { "pack " .. opts.png .. " PNGs --size 64", string.format("pack '%s/pngs' '%s' --size 64", work,
    out) }
end

local rows = {}
for _, job in ipairs(jobs) do
  local secs, mib = { {}, {} }, { {}, {} }
  for r = 1, opts.reps do
    for i, side in ipairs(sides) do
      local s, m = run(side, job[2], job[3])
      secs[i][r], mib[i][r] = s, m
      io.stderr:write(string.format("%s, round %d, %s: %.2f s, %.0f MiB\n", job[1], r, side.name, s, m))
    end
  end
  rows[#rows + 1] = { job[1], bench.median(secs[1]), bench.median(mib[1]), bench.median(secs[2]),
    bench.median(mib[2]) }
end

print(string.format("%s; OMP_NUM_THREADS=2; medians of %d alternating rounds (wall s, peak MiB)", bench.cpu_model(),
  opts.reps))
print()
print(string.format("| job | %s s | %s peak MiB | now s | now peak MiB | now / %s |", old_name, old_name, old_name))
print("|---|---|---|---|---|---|")
for _, r in ipairs(rows) do
  print(string.format("| %s | %.2f | %.0f | %.2f | %.0f | %.2f |", r[1], r[2], r[3], r[4], r[5], r[4] / r[2]))
end
