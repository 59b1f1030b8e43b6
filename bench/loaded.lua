--- Training on a loaded machine: fmnist-small training images/s with one
--- CPU-bound process beside it (a busy loop in a child process), at the
--- default threads and at OMP_NUM_THREADS=1, alternating, medians; the same
--- without the busy process for reference. Issue: with a core taken by other
--- work, threads that wait for each other at every parallel region can make
--- the default slower than one thread.
---
---   lua5.4 bench/loaded.lua [--config fmnist-small] [--reps 3] [--steps 20] [--env "GOMP_SPINCOUNT=0"]
---   (run by bench/loaded.sh, which sets the paths)
--- --env adds settings to the default-threads runs (to compare wait policies).
local bench = require "bench_util"
local run, median = bench.run, bench.median

local opts = bench.options("loaded.lua", { config = "fmnist-small", reps = 3, steps = 20, env = "" }, arg)

local function busy_start()
  -- one CPU-bound process: a shell busy loop, its pid written for the kill
  local f = io.popen("sh -c 'echo $$; exec sh -c \"while :; do :; done\"' & ", "r")
  local pid = f:read("l")
  f:close()
  return assert(tonumber(pid), "loaded.lua: could not start the busy process")
end

local function measure(env)
  local r = run(string.format("%s lua5.4 bench/glow_bench.lua %s train %d", env, opts.config, opts.steps))
  return r.images_per_s
end

local rows = {}
for _, loaded in ipairs { false, true } do
  local pid = loaded and busy_start() or nil
  local ok, err = pcall(function()
    local d, one = {}, {}
    for _ = 1, opts.reps do
      d[#d + 1] = measure(opts.env)
      one[#one + 1] = measure("OMP_NUM_THREADS=1")
      io.stderr:write(string.format("%s: default threads %.1f img/s, 1 thread %.1f img/s\n",
        loaded and "loaded" or "idle", d[#d], one[#one]))
    end
    rows[#rows + 1] = { loaded and "one busy process beside it" or "idle", median(d), median(one) }
  end)
  if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
  if not ok then error(err, 0) end
end

print(string.format("%s; %s training, %d cores; medians of %d alternating runs of %d steps%s", bench.cpu_model(),
  opts.config, tonumber(io.popen("nproc"):read("l")) or 0, opts.reps, opts.steps,
  opts.env ~= "" and ("; default-threads runs with " .. opts.env) or ""))
print()
print("| machine | default threads images/s | OMP_NUM_THREADS=1 images/s | default / 1 thread |")
print("|---|---|---|---|")
for _, r in ipairs(rows) do
  print(string.format("| %s | %.1f | %.1f | %.2fx |", r[1], r[2], r[3], r[2] / r[3]))
end
