--- glow.json: a small, strict JSON (RFC 8259) encoder and decoder, used for
--- the headers of safetensors checkpoints.
---
--- json.encode(value) -> string. Encodes nil and json.null as null,
--- booleans, numbers (integers as integers, floats with %.17g, so a float
--- reads back exactly; NaN and infinities raise), strings (escaped per RFC
--- 8259; must be valid UTF-8, passed through unescaped otherwise), and
--- tables: a table whose keys are exactly 1..n is an array, any other table an
--- object with string keys written in sorted order (deterministic output); an
--- empty table is {} unless marked with json.array. Misuse (a function, a
--- cycle, a non-string key, a sparse array) raises an error naming where the
--- value sits, e.g. "json.encode: at .a[2]: cannot encode a function".
---
--- json.decode(str) -> value, or nil and a message with the byte position
--- ("json: expected ':' after an object key at byte 7"). Objects become plain
--- tables, arrays tables marked with json.array (so json.is_array tells the
--- two apart, and [] re-encodes as []), null becomes json.null. Integers
--- without fraction or exponent that fit in 64 bits decode as Lua integers,
--- other numbers as floats. The decoder is strict: no comments, trailing
--- commas, leading zeros, lone surrogates, invalid UTF-8, control characters
--- in strings or duplicate keys in an object.
local json = {}

local byte, char, find, format, sub = string.byte, string.char, string.find, string.format,
  string.sub
local concat, sort = table.concat, table.sort
local mtype, tointeger = math.type, math.tointeger

local MAX_DEPTH = 1000

--- The JSON null, distinct from a missing value.
json.null = setmetatable({}, { __name = "json.null", __tostring = function() return "null" end })

local array_mt = { __name = "json.array" }

--- Mark t (a new table when nil) as a JSON array, so that it encodes as an
--- array even when empty. Returns t.
function json.array(t)
  return setmetatable(t or {}, array_mt)
end

--- True when t came from a JSON array or was marked by json.array.
function json.is_array(t)
  return type(t) == "table" and getmetatable(t) == array_mt
end

-- ------------------------------------------------------------------ encode
local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
  ["\r"] = "\\r", ["\t"] = "\\t",
}
local function escape_char(c)
  return escapes[c] or format("\\u%04x", byte(c))
end

-- where the value being encoded sits, for error messages: ".key[3]"
local function where(path)
  local parts = {}
  for i, k in ipairs(path) do
    if mtype(k) == "integer" then
      parts[i] = "[" .. k .. "]"
    else
      parts[i] = "." .. tostring(k)
    end
  end
  return #parts > 0 and ("at " .. concat(parts) .. ": ") or ""
end

local function encode_error(path, msg)
  error("json.encode: " .. where(path) .. msg, 0)
end

local function encode_string(s, out, path)
  local ok, bad = utf8.len(s)
  if not ok then encode_error(path, format("string is not valid UTF-8 (byte %d)", bad)) end
  out[#out + 1] = '"' .. s:gsub('[\0-\31"\\]', escape_char) .. '"'
end

-- "array" (keys exactly 1..n, n >= 1, or marked), else "object"
local function kind(t)
  if getmetatable(t) == array_mt then return "array" end
  local n, max = 0, 0
  for k in pairs(t) do
    n = n + 1
    if mtype(k) ~= "integer" or k < 1 then return "object" end
    if k > max then max = k end
  end
  return (n > 0 and max == n) and "array" or "object"
end

local encode_value

local function encode_table(t, out, path, stack)
  if stack[t] then encode_error(path, "circular reference") end
  if #path >= MAX_DEPTH then encode_error(path, "nesting deeper than " .. MAX_DEPTH) end
  stack[t] = true
  local depth = #path + 1
  if kind(t) == "array" then
    local n = 0
    for k in pairs(t) do
      if mtype(k) ~= "integer" or k < 1 then
        encode_error(path, "array marked by json.array has the non-index key " .. tostring(k))
      end
      if k > n then n = k end
    end
    out[#out + 1] = "["
    for i = 1, n do
      if i > 1 then out[#out + 1] = "," end
      path[depth] = i
      encode_value(t[i], out, path, stack)
    end
    out[#out + 1] = "]"
  else
    local keys = {}
    for k in pairs(t) do
      if type(k) ~= "string" then
        encode_error(path, format("object keys must be strings, got the %s key %s (a sparse or "
          .. "mixed table?)", mtype(k) or type(k), tostring(k)))
      end
      keys[#keys + 1] = k
    end
    sort(keys)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      if i > 1 then out[#out + 1] = "," end
      path[depth] = k
      encode_string(k, out, path)
      out[#out + 1] = ":"
      encode_value(t[k], out, path, stack)
    end
    out[#out + 1] = "}"
  end
  path[depth] = nil
  stack[t] = nil
end

function encode_value(v, out, path, stack)
  local tv = type(v)
  if v == nil or v == json.null then
    out[#out + 1] = "null"
  elseif tv == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif tv == "number" then
    if mtype(v) == "integer" then
      out[#out + 1] = format("%d", v)
    elseif v ~= v or v == math.huge or v == -math.huge then
      encode_error(path, "cannot encode " .. tostring(v) .. " (JSON has no NaN or infinity)")
    else
      out[#out + 1] = format("%.17g", v)
    end
  elseif tv == "string" then
    encode_string(v, out, path)
  elseif tv == "table" then
    encode_table(v, out, path, stack)
  else
    encode_error(path, "cannot encode a " .. tv)
  end
end

--- Encode value as compact JSON text.
function json.encode(value)
  local out = {}
  encode_value(value, out, {}, {})
  return concat(out)
end

-- ------------------------------------------------------------------ decode
-- errors inside the decoder are tables {pos, msg}, turned into nil, message
local function decode_error(pos, msg)
  error({ pos = pos, msg = msg }, 0)
end

local function skip(s, pos)
  local _, e = find(s, "^[ \t\r\n]*", pos)
  return e + 1
end

local simple_escapes = {
  [34] = '"', [92] = "\\", [47] = "/", [98] = "\b", [102] = "\f", [110] = "\n", [114] = "\r",
  [116] = "\t",
}

local function hex4(s, pos)
  local h = sub(s, pos, pos + 3)
  if not find(h, "^%x%x%x%x$") then decode_error(pos, "expected 4 hex digits after \\u") end
  return tonumber(h, 16)
end

local function parse_string(s, pos) -- pos: the opening quote
  local parts, i = {}, pos + 1
  while true do
    local j = find(s, '[\0-\31"\\]', i)
    if not j then decode_error(pos, "unterminated string") end
    if j > i then
      local raw = sub(s, i, j - 1)
      local ok, bad = utf8.len(raw)
      if not ok then decode_error(i + bad - 1, "invalid UTF-8 in a string") end
      parts[#parts + 1] = raw
    end
    local c = byte(s, j)
    if c == 34 then
      return concat(parts), j + 1
    elseif c == 92 then
      local e = byte(s, j + 1)
      if simple_escapes[e] then
        parts[#parts + 1] = simple_escapes[e]
        i = j + 2
      elseif e == 117 then -- \uXXXX, maybe a surrogate pair
        local cp = hex4(s, j + 2)
        i = j + 6
        if cp >= 0xDC00 and cp <= 0xDFFF then
          decode_error(j, "lone low surrogate \\u" .. format("%04X", cp))
        elseif cp >= 0xD800 and cp <= 0xDBFF then
          if sub(s, i, i + 1) ~= "\\u" then
            decode_error(j, "high surrogate \\u" .. format("%04X", cp) .. " without a low one")
          end
          local lo = hex4(s, i + 2)
          if lo < 0xDC00 or lo > 0xDFFF then
            decode_error(i, "expected a low surrogate after \\u" .. format("%04X", cp))
          end
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
          i = i + 6
        end
        parts[#parts + 1] = utf8.char(cp)
      else
        decode_error(j, "invalid escape \\" .. (e and char(e) or "") .. " in a string")
      end
    else
      decode_error(j, format("control character 0x%02x in a string (escape it)", c))
    end
  end
end

local function parse_number(s, pos)
  local _, e = find(s, "^-?0", pos)
  if not e then _, e = find(s, "^-?[1-9]%d*", pos) end
  if not e then decode_error(pos, "invalid number") end
  local isfloat = false
  local _, fe = find(s, "^%.%d+", e + 1)
  if fe then
    e, isfloat = fe, true
  elseif byte(s, e + 1) == 46 then
    decode_error(e + 1, "expected digits after the decimal point")
  end
  local _, xe = find(s, "^[eE][-+]?%d+", e + 1)
  if xe then
    e, isfloat = xe, true
  elseif find(s, "^[eE]", e + 1) then
    decode_error(e + 1, "expected digits in the exponent")
  end
  local text = sub(s, pos, e)
  local v = isfloat and tonumber(text) or (tointeger(tonumber(text)) or tonumber(text))
  return v, e + 1
end

local parse_value

local function parse_array(s, pos, depth)
  local t, n = json.array(), 0
  pos = skip(s, pos + 1)
  if byte(s, pos) == 93 then return t, pos + 1 end
  while true do
    local v
    v, pos = parse_value(s, pos, depth)
    n = n + 1
    t[n] = v
    pos = skip(s, pos)
    local c = byte(s, pos)
    if c == 93 then return t, pos + 1 end
    if c ~= 44 then decode_error(pos, "expected ',' or ']' in an array") end
    pos = skip(s, pos + 1)
  end
end

local function parse_object(s, pos, depth)
  local t = {}
  pos = skip(s, pos + 1)
  if byte(s, pos) == 125 then return t, pos + 1 end
  while true do
    if byte(s, pos) ~= 34 then decode_error(pos, "expected a string key in an object") end
    local kpos = pos
    local k
    k, pos = parse_string(s, pos)
    if t[k] ~= nil then decode_error(kpos, format("duplicate key %q in an object", k)) end
    pos = skip(s, pos)
    if byte(s, pos) ~= 58 then decode_error(pos, "expected ':' after an object key") end
    local v
    v, pos = parse_value(s, skip(s, pos + 1), depth)
    t[k] = v
    pos = skip(s, pos)
    local c = byte(s, pos)
    if c == 125 then return t, pos + 1 end
    if c ~= 44 then decode_error(pos, "expected ',' or '}' in an object") end
    pos = skip(s, pos + 1)
  end
end

local literals = { [116] = { "true", true }, [102] = { "false", false }, [110] = { "null", json.null } }

function parse_value(s, pos, depth)
  local c = byte(s, pos)
  if c == 123 or c == 91 then
    if depth >= MAX_DEPTH then decode_error(pos, "nesting deeper than " .. MAX_DEPTH) end
    if c == 123 then return parse_object(s, pos, depth + 1) end
    return parse_array(s, pos, depth + 1)
  elseif c == 34 then
    return parse_string(s, pos)
  elseif c == 45 or (c and c >= 48 and c <= 57) then
    return parse_number(s, pos)
  elseif literals[c] then
    local word = literals[c][1]
    if sub(s, pos, pos + #word - 1) == word then return literals[c][2], pos + #word end
  end
  if c == nil then decode_error(pos, "unexpected end of input, expected a value") end
  decode_error(pos, "expected a value")
end

--- Decode JSON text: value, or nil and a message naming the byte position
--- (1-based) of the problem.
function json.decode(s)
  if type(s) ~= "string" then
    error("json.decode: expected a string, got " .. type(s), 0)
  end
  local ok, v = pcall(function()
    local value, p = parse_value(s, skip(s, 1), 0)
    p = skip(s, p)
    if p <= #s then decode_error(p, "unexpected text after the JSON value") end
    return value
  end)
  if ok then return v end
  if type(v) == "table" and v.pos then
    return nil, format("json: %s at byte %d", v.msg, v.pos)
  end
  error(v, 0) -- not a decoding problem (out of memory): pass it on
end

return json
