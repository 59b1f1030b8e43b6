--- glow.cli.options: the command-line parser of the `glow` command and of
--- the scripts in examples/, on lua-argparse (Debian lua-argparse).
---
--- An option spec maps a name, as written after "--", to
---   {kind, default, help = "...", min = lowest, max = highest,
---    above = exclusive lower bound, choices = {...}, quick = value under --quick,
---    short = "-n", meta = "N"}
--- Kinds: "int", "number", "string", "flag", "numbers" (a comma-separated
--- list of numbers), "strings" (a comma-separated list of words) and "list"
--- (an option that may be given several times: an array of its values). A
--- default of nil leaves the option unset unless given.
---
--- parse(prog, argv, spec [, {args = {...}, description = ...}]) -> opts:
--- opts[name] holds each option's value (its default when not given),
--- opts.given[name] is true for those given on the command line, and
--- opts.args[name] the positional arguments (args: an array of {name, help
--- [, optional = true]}). --help prints the help and exits 0. Anything wrong
--- (an unknown option, a missing value, a wrong type, a value out of range,
--- a missing or extra argument) is one line "prog: message" on stderr and
--- exit code 2, before any work starts.
local argparse = require "argparse"

local M = {}

--- Print "prog: message" on stderr and exit with code 2 (a usage error).
function M.usage_error(prog, fmt, ...)
  local msg = select("#", ...) > 0 and string.format(fmt, ...) or fmt
  io.stderr:write(prog, ": ", msg, " (see ", prog, " --help)\n")
  os.exit(2)
end

local function split_list(s)
  local items = {}
  for item in s:gmatch("[^,%s]+") do items[#items + 1] = item end
  return items
end

--- v as the kind wants it, or nil and what was wanted.
local function convert(kind, v)
  if kind == "int" then
    local n = tonumber(v)
    return n and math.tointeger(n), "an integer"
  elseif kind == "number" then
    local n = tonumber(v)
    if n and (n ~= n or n == math.huge or n == -math.huge) then n = nil end
    return n, "a finite number"
  elseif kind == "numbers" then
    local list = split_list(v)
    if #list == 0 then return nil, "a comma-separated list of numbers" end
    for i, item in ipairs(list) do
      list[i] = tonumber(item)
      if not list[i] then return nil, "a comma-separated list of numbers" end
    end
    return list
  elseif kind == "strings" then
    local list = split_list(v)
    if #list == 0 then return nil, "a comma-separated list" end
    return list
  end
  return v
end

--- nil when x fits the spec s, else what is wrong.
local function out_of_range(s, x)
  if s.min and x < s.min then return string.format("must be >= %s", tostring(s.min)) end
  -- luacheck: ignore 581 (not (x > a) is also true for NaN)
  if s.above and not (x > s.above) then return string.format("must be > %s", tostring(s.above)) end
  if s.max and x > s.max then return string.format("must be <= %s", tostring(s.max)) end
  if s.choices then
    for _, c in ipairs(s.choices) do if c == x then return nil end end
    return "must be one of " .. table.concat(s.choices, ", ")
  end
end

--- The help of an option: its text, its choices, its default (unless the
--- text says its own "[default: ...]", which stays last).
local function help_of(s)
  local h = s.help or ""
  local own = h:find(" [default: ", 1, true)
  if s.choices then
    local c = "(" .. table.concat(s.choices, "|") .. ")"
    if own then h = h:sub(1, own) .. c .. h:sub(own) else h = h .. (h ~= "" and " " or "") .. c end
  end
  if s[2] ~= nil and s[1] ~= "flag" and not own then
    local d = type(s[2]) == "table" and table.concat(s[2], ",") or tostring(s[2])
    h = h .. (h ~= "" and " " or "") .. "[default: " .. d .. "]"
  end
  return h
end

--- The help's label of an option with a short form, on one line: "-t,
--- --temperature <number>" (argparse 0.7 puts each alias with its argument on
--- a line of its own, right-aligned: "   -t <number>," above "--temperature
--- <number>"). An option whose name is one letter shows only "-n <n>" (its
--- "--n" is still accepted).
local function one_line_label(o)
  if type(o._get_argument_list) ~= "function" then return end -- another argparse: its own layout
  function o:_get_label_lines()
    local args = table.concat(self:_get_argument_list(), " ")
    return { table.concat(self._public_aliases, ", ") .. (args ~= "" and " " .. args or "") }
  end
end

--- Add the options of spec to an argparse parser (or command), sorted by name.
function M.add(parser, spec)
  local names = {}
  for k in pairs(spec) do names[#names + 1] = k end
  table.sort(names)
  for _, key in ipairs(names) do
    local s = spec[key]
    local letter = s.short and #key == 1
    local flags = letter and s.short or s.short and (s.short .. " --" .. key) or ("--" .. key)
    local o
    if s[1] == "flag" then
      o = parser:flag(flags, help_of(s))
    else
      o = parser:option(flags, help_of(s)):args(1):argname(s.meta or "<" .. (s[1] == "int" and "n" or s[1]) .. ">")
    end
    if letter then o:hidden_name("--" .. key) end
    if s.short then one_line_label(o) end
    o:target(key)
    o:show_default(false)
    if s[1] == "list" then
      o:count("*")
    else
      o:count("0-1"):overwrite(false) -- an option given twice is an error, not a silent overwrite
    end
  end
  return parser
end

--- How the user writes the option: "-n" for a one-letter name with that
--- short form, else "--name".
local function written(key, s)
  return (#key == 1 and s.short) or ("--" .. key)
end

--- Check and convert what argparse gave for spec; fill in the defaults.
function M.finish(prog, raw, spec, quick)
  local opts, given = { given = {} }, {}
  for key, s in pairs(spec) do
    local v = raw[key]
    if type(v) == "table" and s[1] == "list" and #v == 0 then v = nil end -- argparse's {} for none
    if v ~= nil and v ~= false then
      given[key] = true
      if s[1] == "list" then
        v = type(v) == "table" and v or { v }
      elseif s[1] ~= "flag" then
        local x, want = convert(s[1], v)
        if x == nil then M.usage_error(prog, "option %s needs %s, got '%s'", written(key, s), want, v) end
        for _, item in ipairs(type(x) == "table" and x or { x }) do
          local why = out_of_range(s, item)
          if why then M.usage_error(prog, "option %s %s, got %s", written(key, s), why, tostring(item)) end
        end
        v = x
      end
      opts[key] = v
    end
  end
  for key, s in pairs(spec) do
    if not given[key] then
      if quick and s.quick ~= nil then opts[key] = s.quick
      elseif s[1] == "flag" then opts[key] = false
      else opts[key] = s[2] end
    end
  end
  opts.given = given
  return opts
end

--- The positional arguments: an array of {name, help [, optional = true]}.
function M.add_args(parser, args)
  for _, a in ipairs(args or {}) do
    parser:argument(a[1], a[2]):args(a.optional and "?" or 1)
  end
end

--- argv with a negative number after an option that takes a value joined
--- to it ("--clip", "-1" -> "--clip=-1"), so that argparse reads it as the
--- value (and the range check can refuse it) instead of an unknown option.
local function join_negatives(argv, spec)
  local takes = {}
  for key, s in pairs(spec) do
    if s[1] ~= "flag" then
      takes["--" .. key] = "--" .. key .. "="
      if s.short then takes[s.short] = s.short end
    end
  end
  local out, i = {}, 1
  while i <= #argv do
    local a, b = argv[i], argv[i + 1]
    if takes[a] and b and b:match("^%-[%d.]") then
      out[#out + 1] = takes[a] .. b
      i = i + 2
    else
      out[#out + 1] = a
      i = i + 1
    end
  end
  return out
end

--- Parse argv (an array of strings) for prog; see the top of the file.
function M.parse(prog, argv, spec, extra)
  extra = extra or {}
  argv = join_negatives(argv, spec)
  local parser = argparse(prog, extra.description, extra.epilog)
  parser:help_max_width(100)
  M.add(parser, spec)
  M.add_args(parser, extra.args)
  local ok, raw = parser:pparse(argv)
  if not ok then M.usage_error(prog, "%s", (tostring(raw):gsub("\n", " "))) end
  local opts = M.finish(prog, raw, spec, spec.quick and raw.quick)
  opts.args = {}
  for _, a in ipairs(extra.args or {}) do opts.args[a[1]] = raw[a[1]] end
  return opts
end

return M
