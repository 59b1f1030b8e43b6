--- The glow side of bench/mpi.sh: one process with R threads against R MPI
--- ranks of 1 thread each, the default Fashion-MNIST model, global batch 64,
--- images/s over the training steps (no evaluation), medians.
---   lua5.4 bench/mpi.lua [RANKS] [STEPS] [REPS]
local bench = require "bench_util"
local median = bench.median

local ranks, steps, reps = tonumber(arg[1]) or 2, tonumber(arg[2]) or 60, tonumber(arg[3]) or 3
local root = io.popen("id -u"):read("l") == "0"
local out = os.tmpname()
os.remove(out)

--- images/s of the last run: log.csv's images_per_s of the last step
local function rate()
  local last
  for l in io.lines(out .. "/log.csv") do last = l end
  return tonumber(last:match("^[^,]*,[^,]*,[^,]*,[^,]*,[^,]*,[^,]*,[^,]*,([^,]*)"))
end

local common = string.format("lua5.4 examples/train.lua --max-steps %d --warmup 10 --eval-limit 256 --no-progress "
  .. "--out %s --checkpoint-every 0", steps, out)
local one, many = {}, {}
for _ = 1, reps do
  assert(os.execute(string.format("OMP_NUM_THREADS=%d %s >/dev/null", ranks, common)))
  one[#one + 1] = rate()
  assert(os.execute(string.format("OMP_NUM_THREADS=1 mpirun %s--oversubscribe -np %d -x OMP_NUM_THREADS "
    .. "-x LUA_PATH -x LUA_CPATH %s >/dev/null", root and "--allow-run-as-root " or "", ranks, common)))
  many[#many + 1] = rate()
  io.stderr:write(string.format("1 x %d threads: %.1f img/s; %d ranks x 1 thread: %.1f img/s\n", ranks,
    one[#one], ranks, many[#many]))
end
os.execute("rm -rf '" .. out .. "'")
print(string.format("Fashion-MNIST default model, global batch 64, %d steps, medians of %d", steps, reps))
print()
print("| layout | images/s |")
print("|---|---|")
print(string.format("| 1 process x %d threads | %.1f |", ranks, median(one)))
print(string.format("| %d ranks x 1 thread | %.1f |", ranks, median(many)))
