-- The README's Lua snippets run: each ```lua block is extracted and run as
-- its own script (a fresh lua5.4, in a scratch folder, with the checkout's
-- package on the path). Blocks that train run at small sizes: the
-- substitutions below shrink them, and each must apply, so a README edit
-- cannot silently leave a block unshrunk or unrun.
local H = require "spec.helper"

-- the snippets run in a scratch folder: every path absolute
local root = H.root:sub(1, 1) == "/" and H.root or (os.getenv("PWD") .. "/" .. H.root:gsub("^%./", ""))
local build = os.getenv("GLOW_BUILD") or (root .. "build")
if build:sub(1, 1) ~= "/" then build = os.getenv("PWD") .. "/" .. build end

--- The ```lua blocks of text, in order: {code = ..., line = first line}.
local function lua_blocks(text)
  local blocks, line, cur = {}, 0, nil
  for l in (text .. "\n"):gmatch("(.-)\n") do
    line = line + 1
    if cur then
      if l:match("^```%s*$") then
        blocks[#blocks + 1] = cur
        cur = nil
      else
        cur.code = cur.code .. l .. "\n"
      end
    elseif l:match("^```lua%s*$") then
      cur = { code = "", line = line + 1 }
    end
  end
  assert(cur == nil, "README.md: a ```lua block is not closed")
  return blocks
end

-- {block marker, plain text to find, replacement}: smaller models, fewer
-- steps and test images. Everything else runs as written.
local SHRINK = {
  { "levels = 3, depth = 8, width = 128", "levels = 3, depth = 8, width = 128", "levels = 3, depth = 2, width = 16" },
  { "glow.train.run {", "depth = 8, width = 128", "depth = 1, width = 8" },
  { "glow.train.run {", "epochs = 1, batch = 64,", "epochs = 1, batch = 64, max_steps = 12, eval_limit = 64," },
  { "glow.train.run {", "warmup = 200, schedule", "warmup = 2, schedule" },
  { "glow.train.run {", "checkpoint_every = 500", "checkpoint_every = 5" },
  { "model:train_step", "depth = 8, width = 128", "depth = 1, width = 8" },
  { "model:train_step", "seed = 1, epoch = 1 }", "seed = 1, epoch = 1, limit = 320 }" },
  { "model:train_step", "model:bits_per_dim(test)", "model:bits_per_dim(test, { limit = 64 })" },
}

describe("README.md", function()
  local text = H.read(root .. "README.md")
  local blocks = lua_blocks(text)

  it("has Lua snippets", function()
    assert.is_true(#blocks >= 6, "found " .. #blocks)
  end)

  -- apply the substitutions; each must find its text in the block it names
  local used = {}
  for _, b in ipairs(blocks) do
    for i, s in ipairs(SHRINK) do
      if b.code:find(s[1], 1, true) then
        local at = b.code:find(s[2], 1, true)
        if at then
          b.code = b.code:sub(1, at - 1) .. s[3] .. b.code:sub(at + #s[2])
          used[i] = true
        end
      end
    end
  end

  it("shrinks the blocks that train, with every substitution applied", function()
    for i, s in ipairs(SHRINK) do
      assert.is_true(used[i] == true, string.format("substitution %d (%q in the block with %q) found nothing", i,
        s[2], s[1]))
    end
  end)

  for _, b in ipairs(blocks) do
    it("runs the snippet at line " .. b.line, function()
      local dir = H.tmpdir()
      local f = assert(io.open(dir .. "/snippet.lua", "w"))
      f:write(b.code)
      f:close()
      local cmd = string.format("cd %q && LUA_PATH='%slua/?.lua;%slua/?/init.lua;;' LUA_CPATH='%s/?.so;;' "
        .. "lua5.4 snippet.lua 2>&1", dir, root, root, build)
      local p = io.popen(cmd)
      local out = p:read("a")
      local ok = p:close()
      H.rmdir(dir)
      assert(ok, "README.md line " .. b.line .. ":\n" .. b.code .. "\nfailed:\n" .. out)
    end)
  end
end)
