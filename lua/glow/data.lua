--- glow.data (to be filled in)
local M = {}
return M
