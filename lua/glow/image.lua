--- glow.image (to be filled in)
local M = {}
return M
