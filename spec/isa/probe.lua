-- Run by spec/isa_spec.lua in a child process (GLOW_ISA set, or under
-- qemu-x86_64): loads glow, prints the ISA level and the BLAS kernel on the
-- first line, then the log-densities of a small model, one per line.
local glow = require "glow"
local info = glow.info()
print(info.isa .. " " .. info.blas_kernel)
local m = glow.Glow { shape = { 8, 8, 2 }, levels = 2, depth = 2, width = 8, seed = 3 }
local x = glow.rand({ 4, 8, 8, 2 }, 1):add_(glow.Tensor { 4, 8, 8, 2 }:fill_(-0.5))
m:initialize(x)
for i, p in ipairs(m:parameters()) do p.value:add_(glow.randn(p.value:shape(), 100 + i, 0.05)) end
for _, v in ipairs(m:log_prob(x):totable()) do print(string.format("%.9g", v)) end
