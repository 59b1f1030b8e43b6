--- What the side-by-side benchmark scripts share: option parsing, running
--- one measurement (a command that ends by printing one JSON line), medians.
local json = require "glow.json"

local util = {}

--- Options "--name value" over the defaults (numbers stay numbers); an
--- unknown name is an error naming the script.
function util.options(script, defaults, argv)
  local opts = {}
  for k, v in pairs(defaults) do opts[k] = v end
  local i = 1
  while i <= #argv do
    local k = argv[i]:match("^%-%-(.+)$")
    if not k or opts[k] == nil then error(script .. ": unknown option " .. tostring(argv[i]), 0) end
    opts[k] = tonumber(argv[i + 1]) or argv[i + 1]
    i = i + 2
  end
  return opts
end

--- Run a shell command and decode the JSON line it printed last.
function util.run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  local line = out:match("(%b{})%s*$")
  local v = line and json.decode(line)
  if not ok or not v then error("`" .. cmd .. "` failed:\n" .. out, 0) end
  return v
end

--- glibc's malloc settings for the torch side, the ones glow sets for itself
--- (glow_memory_setup: freed memory stays in the process, no mmap and
--- munmap per large tensor). Where page faults are expensive (a virtual
--- machine that traps each one), torch with glibc's defaults ran the same
--- fmnist-small encode at 67 or at 670 images/s from one process to the
--- next, as glibc's adaptive mmap threshold happened to settle; with these
--- it runs at the fast figure every time.
util.TORCH_MALLOC = "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"

--- This process's peak resident set (VmHWM) in MiB. (bench/glow_bench.lua
--- keeps its own copy: bench/ab.lua runs it without bench/ on the path.)
function util.peak_rss_mib()
  for l in io.lines("/proc/self/status") do
    local v = l:match("^VmHWM:%s+(%d+)")
    if v then return tonumber(v) / 1024 end
  end
end

--- The CPU's model name, as /proc/cpuinfo gives it (every figure names it).
function util.cpu_model()
  for l in io.lines("/proc/cpuinfo") do
    local m = l:match("^model name%s*:%s*(.-)%s*$")
    if m then return m end
  end
  return "unknown CPU"
end

--- The default coupling network (conv3x3, ActNorm, ReLU, conv1x1, ActNorm,
--- ReLU, ZeroConv3x3) written with glow's ops and glow.autograd, for
--- glow.Glow's net option: the same layers and initialization as the fused
--- glow.nn network, without its fused kernel.
function util.ops_net(cin, cout, info)
  local glow = require "glow"
  local w = info.width
  local net = glow.autograd.Net(function(self, x)
    local h = glow.conv2d(x, self.w1)
    h = ((h + self.an1_bias) * self.an1_logs:exp()):relu()
    h = glow.conv2d(h, self.w2)
    h = ((h + self.an2_bias) * self.an2_logs:exp()):relu()
    return glow.conv2d(h, self.w3, self.b3) * (self.logscale * 3):exp()
  end)
  net:param("w1", glow.randn({ 3, 3, cin, w }, info.seed, 0.05))
  net:param("an1_bias", glow.zeros({ w })):param("an1_logs", glow.zeros({ w }))
  net:param("w2", glow.randn({ 1, 1, w, w }, info.seed + 1, 0.05))
  net:param("an2_bias", glow.zeros({ w })):param("an2_logs", glow.zeros({ w }))
  net:param("w3", glow.zeros({ 3, 3, w, cout })):param("b3", glow.zeros({ cout }))
  net:param("logscale", glow.zeros({ cout }))
  return net
end

function util.median(t)
  local s = {}
  for k, v in ipairs(t) do s[k] = v end
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
end

return util
