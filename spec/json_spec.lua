require "spec.helper"
local json = require "glow.json"

describe("json.encode", function()
  it("encodes scalars: null, booleans, integers, floats and strings", function()
    assert.equal("null", json.encode(nil))
    assert.equal("null", json.encode(json.null))
    assert.equal("true", json.encode(true))
    assert.equal("false", json.encode(false))
    assert.equal("42", json.encode(42))
    assert.equal("-7", json.encode(-7))
    assert.equal("9223372036854775807", json.encode(math.maxinteger))
    assert.equal("0.5", json.encode(0.5))
    assert.equal("0.10000000000000001", json.encode(0.1))
    assert.equal('"hi"', json.encode("hi"))
  end)

  it("writes floats with enough digits to read back exactly", function()
    for _, v in ipairs { 0.1, 1 / 3, -2.5e-300, 1.7976931348623157e308, 3.0, 6.02214076e23 } do
      local back = json.decode(json.encode(v))
      assert.equal(v, back)
    end
  end)

  it("raises on NaN and infinities", function()
    assert.has_error(function() json.encode(0 / 0) end)
    assert.has_error(function() json.encode(math.huge) end,
      "json.encode: cannot encode inf (JSON has no NaN or infinity)")
    assert.has_error(function() json.encode { a = { 1, -math.huge } } end,
      "json.encode: at .a[2]: cannot encode -inf (JSON has no NaN or infinity)")
  end)

  it("escapes quotes, backslashes and control characters per RFC 8259", function()
    assert.equal([["a\"b\\c"]], json.encode('a"b\\c'))
    assert.equal([["\b\f\n\r\t"]], json.encode("\b\f\n\r\t"))
    assert.equal([["\u0000\u0001\u001f"]], json.encode("\0\1\31"))
    assert.equal([["/"]], json.encode("/"))
  end)

  it("passes UTF-8 through unescaped and rejects invalid UTF-8", function()
    assert.equal('"héllo ✓ 𝄞"', json.encode("héllo ✓ 𝄞"))
    assert.has_error(function() json.encode("ab\xff") end,
      "json.encode: string is not valid UTF-8 (byte 3)")
  end)

  it("tells arrays (keys 1..n) from objects and sorts object keys", function()
    assert.equal("[1,2,3]", json.encode { 1, 2, 3 })
    assert.equal('{"a":1,"b":[true,false],"c":{"z":"y"}}',
      json.encode { c = { z = "y" }, a = 1, b = { true, false } })
    assert.equal('{"A":1,"B":2,"_":3,"a":4}', json.encode { a = 4, _ = 3, B = 2, A = 1 })
  end)

  it("encodes an empty table as {} and an empty marked array as []", function()
    assert.equal("{}", json.encode {})
    assert.equal("[]", json.encode(json.array()))
    assert.equal('{"shape":[]}', json.encode { shape = json.array {} })
  end)

  it("gives the same text for the same table every time", function()
    local t = {}
    for i = 1, 50 do t["k" .. i] = i end
    local first = json.encode(t)
    for _ = 1, 5 do assert.equal(first, json.encode(t)) end
  end)

  it("raises on values JSON cannot hold, naming where they sit", function()
    assert.has_error(function() json.encode { f = print } end,
      "json.encode: at .f: cannot encode a function")
    assert.has_error(function() json.encode { 1, nil, 3 } end)
    assert.has_error(function() json.encode { [1] = 1, x = 2 } end,
      "json.encode: object keys must be strings, got the integer key 1 (a sparse or mixed table?)")
    assert.has_error(function() json.encode { [true] = 1 } end)
    local t = {}
    t.self = t
    assert.has_error(function() json.encode(t) end, "json.encode: at .self: circular reference")
  end)

  it("encodes a table seen twice (but not in a cycle) both times", function()
    local shared = { 1, 2 }
    assert.equal('{"a":[1,2],"b":[1,2]}', json.encode { a = shared, b = shared })
  end)
end)

describe("json.decode", function()
  it("decodes scalars, arrays and objects", function()
    assert.equal(json.null, json.decode("null"))
    assert.is_true(json.decode(" true "))
    assert.is_false(json.decode("false"))
    assert.equal("x", json.decode('"x"'))
    assert.same({ 1, 2, { a = "b" } }, json.decode('[1, 2, {"a": "b"}]'))
    assert.same({ a = { b = { c = {} } } }, json.decode('{"a":{"b":{"c":[]}}}'))
  end)

  it("decodes integers as integers and the rest as floats", function()
    assert.equal("integer", math.type(json.decode("12")))
    assert.equal("integer", math.type(json.decode("-0")))
    assert.equal("float", math.type(json.decode("12.0")))
    assert.equal("float", math.type(json.decode("1e2")))
    assert.equal(100.0, json.decode("1E+2"))
    assert.equal(-0.025, json.decode("-2.5e-2"))
    assert.equal(9223372036854775807, json.decode("9223372036854775807"))
    assert.equal("float", math.type(json.decode("18446744073709551616")))
  end)

  it("marks arrays so they re-encode as arrays, even when empty", function()
    local v = json.decode('{"a":[],"b":{}}')
    assert.is_true(json.is_array(v.a))
    assert.is_false(json.is_array(v.b))
    assert.is_false(json.is_array(v))
    assert.equal('{"a":[],"b":{}}', json.encode(v))
  end)

  it("round-trips nested values", function()
    local v = { name = "w", shape = { 3, 3, 8, 16 }, offsets = { 0, 4608 }, ok = true,
      meta = { lr = "0.001", note = 'quote " and \\ and \n' }, x = 0.25 }
    assert.same(v, json.decode(json.encode(v)))
    local text = json.encode(v)
    assert.equal(text, json.encode(json.decode(text)))
  end)

  it("unescapes every escape, \\u included, surrogate pairs too", function()
    assert.equal('"\\/\b\f\n\r\t', json.decode([["\"\\\/\b\f\n\r\t"]]))
    assert.equal("A\0é€", json.decode([["\u0041\u0000\u00e9\u20AC"]]))
    assert.equal("𝄞", json.decode([["\uD834\uDD1E"]]))
  end)

  it("passes UTF-8 in strings and keys through", function()
    local v = json.decode('{"κλειδί": "значение ✓ 𝄞"}')
    assert.equal("значение ✓ 𝄞", v["κλειδί"])
    local s = "日本語 — ok"
    assert.equal(s, json.decode(json.encode(s)))
  end)

  local function fails(text, message)
    local v, err = json.decode(text)
    assert.is_nil(v)
    assert.equal(message, err)
  end

  it("reports syntax errors with their byte position", function()
    fails('{"a" 1}', "json: expected ':' after an object key at byte 6")
    fails("[1, 2,]", "json: expected a value at byte 7")
    fails("[1 2]", "json: expected ',' or ']' in an array at byte 4")
    fails('{"a":1,}', "json: expected a string key in an object at byte 8")
    fails("{a:1}", "json: expected a string key in an object at byte 2")
    fails('{"a":1 "b":2}', "json: expected ',' or '}' in an object at byte 8")
    fails("", "json: unexpected end of input, expected a value at byte 1")
    fails("   ", "json: unexpected end of input, expected a value at byte 4")
    fails("[1, 2", "json: expected ',' or ']' in an array at byte 6")
    fails("{} x", "json: unexpected text after the JSON value at byte 4")
    fails("nul", "json: expected a value at byte 1")
    fails("tru e", "json: expected a value at byte 1")
    fails("// c\n1", "json: expected a value at byte 1")
  end)

  it("rejects numbers outside the JSON grammar", function()
    fails("01", "json: unexpected text after the JSON value at byte 2")
    fails("1.", "json: expected digits after the decimal point at byte 2")
    fails(".5", "json: expected a value at byte 1")
    fails("1e", "json: expected digits in the exponent at byte 2")
    fails("+1", "json: expected a value at byte 1")
    fails("-", "json: invalid number at byte 1")
    fails("NaN", "json: expected a value at byte 1")
  end)

  it("rejects bad strings: unterminated, raw control characters, bad escapes", function()
    fails('"abc', "json: unterminated string at byte 1")
    fails('["a\nb"]', "json: control character 0x0a in a string (escape it) at byte 4")
    fails('"\\x"', "json: invalid escape \\x in a string at byte 2")
    fails('"\\u12G4"', "json: expected 4 hex digits after \\u at byte 4")
    fails('"\\uDD1E"', "json: lone low surrogate \\uDD1E at byte 2")
    fails('"\\uD834x"', "json: high surrogate \\uD834 without a low one at byte 2")
    fails('"\\uD834\\u0041"', "json: expected a low surrogate after \\uD834 at byte 8")
    fails('"ab\xffcd"', "json: invalid UTF-8 in a string at byte 4")
    fails('"\xed\xa0\x80"', "json: invalid UTF-8 in a string at byte 2")
  end)

  it("rejects duplicate keys", function()
    fails('{"a":1,"a":2}', 'json: duplicate key "a" in an object at byte 8')
  end)

  it("rejects nesting deeper than 1000 levels instead of overflowing", function()
    local deep = string.rep("[", 1001) .. string.rep("]", 1001)
    fails(deep, "json: nesting deeper than 1000 at byte 1001")
    assert.equal(1, #json.decode(string.rep("[", 999) .. string.rep("]", 999)))
  end)

  it("raises when given something other than a string", function()
    assert.has_error(function() json.decode(12) end, "json.decode: expected a string, got number")
  end)
end)
