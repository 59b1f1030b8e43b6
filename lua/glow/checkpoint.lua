--- glow.checkpoint: safetensors files (the file layer under model:save and
--- glow.load).
---
--- A file is an 8-byte little-endian header length N, N bytes of JSON (padded
--- with spaces so the data is 8-byte aligned), then the data buffer: each
--- tensor's float32 values, little-endian, back to back in the order given.
--- The header maps each tensor name to {"dtype": "F32", "shape": [...],
--- "data_offsets": [begin, end]} (offsets into the data buffer) and holds an
--- optional "__metadata__" object of string -> string. Files interoperate
--- with other safetensors readers and writers (float32 tensors only).
---
--- This module builds and validates the JSON header (glow.json); C
--- (csrc/checkpoint.c) does the I/O: the atomic write (temporary file, fsync,
--- rename) and the size-checked reads straight into the tensors.
---
---   checkpoint.write(path, tensors, metadata) -> true | nil, message
---   checkpoint.read(path) -> tensors, metadata | nil, message
---   checkpoint.temp_path(path) -> the temporary file a write goes through
---
--- Misuse (bad arguments) raises an error; I/O failure and corrupt files
--- return nil and a message that names the file and the problem.
local core = require "glow.core"
local json = require "glow.json"
local util = require "glow.util"

local M = {}

local format = string.format
local MAX_DIMS = 8

local function misuse(msg, ...)
  error("checkpoint." .. format(msg, ...), 0)
end

--- The temporary file that write(path, ...) goes through: path .. ".tmp-" ..
--- the process id, in the same directory (removed on any failure).
function M.temp_path(path)
  return core.checkpoint_temp_path(path)
end

local function check_metadata(metadata)
  if metadata == nil then return nil end
  if type(metadata) ~= "table" then
    misuse("write: metadata must be a table of string -> string, got %s", type(metadata))
  end
  local copy, any = {}, false
  for k, v in pairs(metadata) do
    if type(k) ~= "string" then
      misuse("write: metadata keys must be strings, got the %s key %s", type(k), tostring(k))
    end
    if type(v) ~= "string" then
      misuse("write: metadata[%q] must be a string, got %s", k, type(v))
    end
    copy[k], any = v, true
  end
  return any and copy or nil
end

--- Write tensors, an array of {name = string, value = glow.Tensor}, and
--- metadata (nil or a table of string -> string) to path as a safetensors
--- file, atomically: an existing file at path is replaced only once the new
--- one is complete and synced to disk. Returns true, or nil and a message.
function M.write(path, tensors, metadata)
  if type(path) ~= "string" or path == "" then
    misuse("write: path must be a non-empty string, got %s", type(path) == "string" and '""'
      or type(path))
  end
  if type(tensors) ~= "table" then
    misuse("write: tensors must be an array of {name = ..., value = tensor}, got %s",
      type(tensors))
  end
  local header, values, seen, offset = {}, {}, {}, 0
  for i = 1, #tensors do
    local entry = tensors[i]
    if type(entry) ~= "table" then
      misuse("write: tensors[%d] must be a table {name = ..., value = tensor}, got %s", i,
        type(entry))
    end
    local name, t = entry.name, entry.value
    if type(name) ~= "string" or name == "" then
      misuse("write: tensors[%d].name must be a non-empty string, got %s", i,
        name == "" and '""' or type(name))
    end
    if not utf8.len(name) then misuse("write: tensors[%d].name %q is not valid UTF-8", i, name) end
    if name == "__metadata__" then
      misuse("write: tensors[%d].name \"__metadata__\" is reserved for the metadata", i)
    end
    if seen[name] then
      misuse("write: tensor name %q appears twice (tensors[%d] and tensors[%d])", name, seen[name], i)
    end
    if not util.is_tensor(t) then
      misuse("write: tensors[%d].value (%q) must be a glow.Tensor, got %s", i, name, type(t))
    end
    if t:is_closed() then misuse("write: tensors[%d].value (%q) is a closed tensor", i, name) end
    seen[name] = i
    local bytes = t:numel() * 4
    header[name] = {
      dtype = "F32",
      shape = json.array(t:shape()),
      data_offsets = json.array { offset, offset + bytes },
    }
    values[i] = t
    offset = offset + bytes
  end
  header.__metadata__ = check_metadata(metadata)
  local ok, text = pcall(json.encode, header)
  if not ok then misuse("write: %s", text) end
  return core.checkpoint_write(path, text, values)
end

-- a JSON number that is an integer >= 0 (integral floats too), else nil
local function count(v)
  return type(v) == "number" and math.tointeger(v) and math.tointeger(v) >= 0
    and math.tointeger(v) or nil
end

-- a decoded JSON array for a message: [2, 3]
local function show(list)
  local parts = {}
  for i, v in ipairs(list) do
    parts[i] = type(v) == "number" and tostring(v) or json.encode(v)
  end
  return "[" .. table.concat(parts, ", ") .. "]"
end

-- check one header entry against the data buffer of `buffer` bytes; returns
-- {name, shape, begin, stop} or nil, problem
local function check_entry(name, e, buffer)
  local function bad(msg, ...)
    return nil, format("tensor %q: " .. msg, name, ...)
  end
  if type(e) ~= "table" or json.is_array(e) then return bad("entry is not a JSON object") end
  for _, key in ipairs { "dtype", "shape", "data_offsets" } do
    if e[key] == nil then return bad("entry has no %q", key) end
  end
  if e.dtype ~= "F32" then
    return bad("dtype %s is not supported (glow reads F32 only)", tostring(e.dtype))
  end
  local shape, offsets = e.shape, e.data_offsets
  if not json.is_array(shape) then return bad("shape is not an array") end
  if #shape > MAX_DIMS then return bad("shape has %d dimensions (at most %d)", #shape, MAX_DIMS) end
  for d = 1, #shape do
    local n = count(shape[d])
    if not n then return bad("shape %s: dimension %d is not a non-negative integer", show(shape), d) end
    if n == 0 then return bad("shape %s holds no values (glow tensors cannot be empty)", show(shape)) end
  end
  if not json.is_array(offsets) or #offsets ~= 2 or not count(offsets[1]) or not count(offsets[2]) then
    return bad("data_offsets must be [begin, end], two non-negative integers")
  end
  local b, s = count(offsets[1]), count(offsets[2])
  if b > s then return bad("data_offsets %s are out of order (begin after end)", show(offsets)) end
  if s > buffer then
    return bad("data_offsets %s lie outside the %d-byte data buffer (missing data: file truncated?)",
      show(offsets), buffer)
  end
  -- prod(shape) * 4 must be the span; multiply without overflow (nil: past 2^63 bytes)
  local dims, numel = {}, 1
  for d = 1, #shape do
    dims[d] = count(shape[d])
    numel = numel and dims[d] <= math.maxinteger // 4 // numel and numel * dims[d] or nil
  end
  if numel == nil or s - b ~= numel * 4 then
    return bad("data_offsets %s span %d bytes but shape %s of F32 needs %s", show(offsets), s - b,
      show(shape), numel and tostring(numel * 4) or "more than 2^63")
  end
  return { name = name, shape = dims, begin = b, stop = s }
end

-- the header object -> sorted entries, metadata; or nil, problem
local function check_header(h, buffer)
  if type(h) ~= "table" or json.is_array(h) then return nil, "header is not a JSON object" end
  local metadata = {}
  local meta = h.__metadata__
  if meta ~= nil then
    if type(meta) ~= "table" or json.is_array(meta) then
      return nil, "__metadata__ is not a JSON object"
    end
    for k, v in pairs(meta) do
      if type(v) ~= "string" then
        return nil, format("__metadata__[%q] is not a string (%s)", k, v == json.null and "null"
          or type(v))
      end
      metadata[k] = v
    end
  end
  local entries = {}
  for name, e in pairs(h) do
    if name ~= "__metadata__" then
      local entry, problem = check_entry(name, e, buffer)
      if not entry then return nil, problem end
      entries[#entries + 1] = entry
    end
  end
  table.sort(entries, function(a, b)
    if a.begin ~= b.begin then return a.begin < b.begin end
    return a.name < b.name
  end)
  -- contiguous, non-overlapping, covering the buffer exactly
  local pos, prev = 0, nil
  for _, e in ipairs(entries) do
    if e.begin < pos then
      return nil, format("tensors %q [%d, %d] and %q [%d, %d] overlap", prev.name, prev.begin,
        prev.stop, e.name, e.begin, e.stop)
    elseif e.begin > pos then
      return nil, format("bytes [%d, %d] of the data buffer belong to no tensor (a gap before %q)",
        pos, e.begin, e.name)
    end
    pos, prev = e.stop, e
  end
  if pos ~= buffer then
    return nil, format("trailing data: the tensors cover %d bytes but the data buffer holds %d",
      pos, buffer)
  end
  return entries, metadata
end

--- Read a safetensors file of F32 tensors: a table name -> glow.Tensor (with
--- the stored shapes; a scalar, shape [], reads as a 0-dimensional tensor)
--- and the metadata (string -> string, empty when the file has none). On a
--- missing or corrupt file returns nil and a message naming the file and the
--- problem; nothing is read into tensors unless the whole header checks out.
function M.read(path)
  if type(path) ~= "string" or path == "" then
    misuse("read: path must be a non-empty string, got %s", type(path) == "string" and '""'
      or type(path))
  end
  local text, hlen, size = core.checkpoint_read_header(path)
  if not text then return nil, hlen end
  local h, jerr = json.decode(text)
  if h == nil then return nil, format("%s: header is not valid JSON: %s", path, jerr) end
  local entries, metadata = check_header(h, size - 8 - hlen)
  if not entries then return nil, path .. ": " .. metadata end
  local shapes, begins = {}, {}
  for i, e in ipairs(entries) do
    shapes[i], begins[i] = e.shape, e.begin
  end
  local values, err = core.checkpoint_read_data(path, hlen, size, shapes, begins)
  if not values then return nil, err end
  local tensors = {}
  for i, e in ipairs(entries) do tensors[e.name] = values[i] end
  return tensors, metadata
end

return M
