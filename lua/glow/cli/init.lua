--- glow.cli: the `glow` command (installed by the rock; lua/bin/glow).
---
---   glow train  [options]                    train; report test bits/dim; write samples, a curve
---   glow eval   CKPT DATA [--csv F] [--histogram F.png] [--against DATA2]   (DATA2: an AUROC too)
---   glow sample CKPT OUT.png|OUT.jpg [-n 64] [-t 0.7] [-y LABEL] [--scale K]
---   glow encode CKPT DATA OUT.safetensors     latents z1..zL
---   glow decode CKPT LATENTS.safetensors OUT.png|OUT.jpg [--scale K]
---   glow info   CKPT                         configuration, parameter count, training position
---   glow plot   LOG.csv OUT.png              the training curve, through gnuplot
---   glow pack   DATA OUT.glowpack            a packed set for data larger than memory
---
--- Every subcommand has --help. A bad option or argument is one line on
--- stderr and exit code 2, before any work; a failure while working (a file
--- that cannot be read or written) is one line and exit code 1. Set
--- GLOW_TRACEBACK=1 for a stack traceback instead.
local options = require "glow.cli.options"

local M = {}

local tools = require "glow.cli.tools"
M.COMMANDS = {
  train = require "glow.cli.train", eval = require "glow.cli.eval", sample = tools.sample,
  encode = tools.encode, decode = tools.decode, info = tools.info, plot = tools.plot, pack = tools.pack,
}
M.ORDER = { "train", "eval", "sample", "encode", "decode", "info", "plot", "pack" }

local function usage()
  local lines = { "Usage: glow <command> [options]   (glow <command> --help for its options)", "",
    "Glow (Kingma & Dhariwal, 2018): train, evaluate and sample flow models of images.", "", "Commands:" }
  for _, name in ipairs(M.ORDER) do
    lines[#lines + 1] = string.format("   %-8s %s", name, M.COMMANDS[name].description)
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Data sets: fashion-mnist[:train|:test], cifar10:DIR[:split], a folder of PNG/JPEG images, "
    .. "or a .glowpack file."
  return table.concat(lines, "\n")
end

--- Run the command line argv (an array: the command, then its arguments).
--- Returns what the subcommand returns; usage errors exit(2).
function M.main(argv)
  io.stdout:setvbuf("line")
  local name = argv[1]
  if name == nil or name == "-h" or name == "--help" or name == "help" then
    if name == "help" and argv[2] and M.COMMANDS[argv[2]] then return M.main { argv[2], "--help" } end
    print(usage())
    if name == nil then os.exit(2) end
    return
  end
  local cmd = M.COMMANDS[name]
  if not cmd then
    options.usage_error("glow", "unknown command '%s' (%s)", name, table.concat(M.ORDER, ", "))
  end
  local prog = "glow " .. name
  local opts = options.parse(prog, table.move(argv, 2, #argv, 1, {}), cmd.SPEC,
    { args = cmd.ARGS, description = cmd.description })
  local ok, result = xpcall(cmd.run, function(e)
    if os.getenv("GLOW_TRACEBACK") then return debug.traceback(tostring(e), 2) end
    return tostring(e)
  end, opts)
  if not ok then
    io.stderr:write(prog, ": ", (result:gsub("%s*\n%s*", os.getenv("GLOW_TRACEBACK") and "\n" or "; ")), "\n")
    os.exit(1)
  end
  return result
end

return M
