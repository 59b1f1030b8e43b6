--- glow.checkpoint (to be filled in)
local M = {}
return M
