require "spec.helper"
local stats = require "glow.stats"

--- AUROC by brute force: every (inside, outside) pair, a win 1, a tie 1/2.
local function pairs_auroc(inside, outside)
  local wins = 0
  for _, a in ipairs(inside) do
    for _, b in ipairs(outside) do
      if b > a then wins = wins + 1 elseif b == a then wins = wins + 0.5 end
    end
  end
  return wins / (#inside * #outside)
end

describe("stats.auroc", function()
  it("gives a hand-computed case with ties exactly", function()
    -- pairs (inside, outside): outside 3 beats 1, 2 and ties 3 -> 2.5; outside 5 beats all 3 -> 3;
    -- outside 2 beats 1, ties 2 -> 1.5; 7 of 9 pairs
    assert.equal(7 / 9, stats.auroc({ 1, 2, 3 }, { 3, 5, 2 }))
  end)

  it("is 1 for separated sets, 0 for the reverse, 0.5 for one value everywhere", function()
    assert.equal(1, stats.auroc({ 3.1, 2.9, 3.0 }, { 4, 5 }))
    assert.equal(0, stats.auroc({ 4, 5 }, { 3.1, 2.9, 3.0 }))
    assert.equal(0.5, stats.auroc({ 2, 2 }, { 2, 2, 2 }))
  end)

  it("agrees with counting every pair on sets with many ties", function()
    local inside, outside = {}, {}
    for i = 1, 300 do inside[i] = (i * 37) % 23 / 4 end
    for j = 1, 170 do outside[j] = (j * 11) % 29 / 4 end
    assert.equal(pairs_auroc(inside, outside), stats.auroc(inside, outside))
  end)

  it("raises on an empty set or a value that is not a finite number", function()
    assert.has_error(function() stats.auroc({}, { 1 }) end, "stats.auroc: inside must be a non-empty array of numbers")
    assert.has_error(function() stats.auroc({ 1 }, { 2, 0 / 0 }) end,
      "stats.auroc: outside: value 2 must be a finite number, got " .. tostring(0 / 0))
  end)
end)

describe("stats.percentile", function()
  it("interpolates between the nearest order statistics (numpy's linear method)", function()
    local v = { 4, 1, 3, 2, 5 }
    assert.equal(1, stats.percentile(v, 0))
    assert.equal(5, stats.percentile(v, 100))
    assert.equal(3, stats.percentile(v, 50))
    assert.equal(1.04, stats.percentile(v, 1))
    assert.equal(2.5, stats.percentile({ 1, 2, 3, 4 }, 50))
    assert.equal(7, stats.percentile({ 7 }, 99))
  end)

  it("raises on p out of range", function()
    assert.has_error(function() stats.percentile({ 1 }, 101) end,
      "stats.percentile: p must be a number in [0, 100], got 101")
  end)
end)
