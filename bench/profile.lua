--- Where training time goes: perf samples of glow_bench.lua's training steps,
--- their shares by category, one markdown table per run. Run it on an idle
--- machine. Sampling starts --delay milliseconds after the process (perf
--- record -D), to leave out building the model, initializing it and the
--- warm-up step (0 keeps them); the steps run long enough to fill the rest.
---
---   lua5.4 bench/profile.lua [--configs fmnist-small,cifar-k8] [--steps 30] [--threads 2]
---       [--delay 3000] [--tree DIR] [--label after]
---   (run by bench/profile.sh, which sets the paths)
--- --tree profiles another checkout's lua/, bench/ and build/ (an older
--- revision, for a before-and-after table); --label names the column.
---
--- Categories, from perf's dso and symbol of each sample:
---   sgemm        OpenBLAS's compute kernels (sgemm_kernel_*) and its drivers
---   BLAS copies  OpenBLAS's packing copies (*_oncopy, *_otcopy, *_incopy, *_itcopy, *beta*)
---   glow kernels the core (glow/core-*.so): convolutions, elementwise, ActNorm, Adam, ...
---   libc copies  memcpy, memmove, memset
---   thread waits libgomp (barriers, spinning, waking threads)
---   Lua          the interpreter and its library (lua5.4, liblua5.4)
---   kernel       the operating system (page faults, scheduling, system calls)
---   other        the rest (malloc, libm, ...)
local bench = require "bench_util"

local opts = bench.options("profile.lua", { configs = "fmnist-small,cifar-k8", steps = 30, threads = 2,
  delay = 3000, tree = ".", label = "this checkout" }, arg)

local function category(dso, sym)
  if dso:match("openblas") then
    if sym:match("copy") or sym:match("beta") then return "BLAS copies" end
    return "sgemm"
  end
  if dso:match("^core%-") or dso:match("^core%.so") then return "glow kernels" end
  if dso:match("^libc[%.%-]") and (sym:match("memcpy") or sym:match("memmove") or sym:match("memset")) then
    return "libc copies"
  end
  if dso:match("libgomp") then return "thread waits" end
  if dso:match("^lua5%.4") or dso:match("liblua") then return "Lua" end
  if dso:match("kernel") then return "kernel" end
  return "other"
end
local ORDER = { "sgemm", "BLAS copies", "glow kernels", "libc copies", "thread waits", "Lua", "kernel", "other" }

local tree = opts.tree
local data = os.tmpname()
print(string.format("%s; %s; %d threads; perf record -F 999 -D %d over glow_bench.lua <config> train %d",
  bench.cpu_model(), opts.label, opts.threads, opts.delay, opts.steps))
print()
print("| config | " .. table.concat(ORDER, " | ") .. " | top symbols |")
print("|---|" .. string.rep("---|", #ORDER) .. "---|")
for config in tostring(opts.configs):gmatch("[^,]+") do
  local cmd = string.format("cd %q && OMP_NUM_THREADS=%d LUA_PATH='%s/lua/?.lua;%s/lua/?/init.lua;%s/bench/?.lua;;' "
    .. "LUA_CPATH='%s/build/?.so;;' perf record -q -F 999 -D %d -o %s -- lua5.4 bench/glow_bench.lua %s train %d "
    .. ">/dev/null 2>&1", tree, opts.threads, tree, tree, tree, tree, opts.delay, data, config, opts.steps)
  assert(os.execute(cmd), "profile.lua: perf record failed: " .. cmd)
  local p = assert(io.popen(string.format(
    "perf report -i %s --no-children --sort dso,sym --stdio -q --percent-limit 0 2>/dev/null", data)))
  local share, top = {}, {}
  for _, c in ipairs(ORDER) do share[c] = 0 end
  for line in p:lines() do
    local pct, dso, sym = line:match("^%s*([%d%.]+)%%%s+(%S+)%s+%[.%]%s+(.-)%s*$")
    if pct then
      local c = category(dso, sym)
      share[c] = share[c] + tonumber(pct)
      if #top < 5 then top[#top + 1] = string.format("%s %.1f%%", sym, tonumber(pct)) end
    end
  end
  p:close()
  local cells = {}
  for i, c in ipairs(ORDER) do cells[i] = string.format("%.1f%%", share[c]) end
  print(string.format("| %s | %s | %s |", config, table.concat(cells, " | "), table.concat(top, ", ")))
end
os.remove(data)
