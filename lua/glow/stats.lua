--- glow.stats: small exact statistics over Lua arrays of numbers (per-image
--- or per-step figures, not pixels).
---
---   stats.percentile(values, p) -> the p-th percentile (p in [0, 100])
---   stats.auroc(inside, outside) -> AUROC of telling outside from inside by
---       a higher value
---
--- percentile interpolates linearly between the two nearest order
--- statistics (numpy's default, the "linear" method): rank (n - 1) * p / 100
--- from 0, so the 0th is the smallest value and the 100th the largest.
---
--- auroc is the area under the ROC curve of the score "the value": the
--- probability that an image drawn from outside has a higher value than one
--- drawn from inside, ties counted half. It is computed exactly from ranks
--- (the Mann-Whitney U statistic, tied values sharing their mean rank):
--- U = (sum of outside's ranks) - m (m + 1) / 2, AUROC = U / (n m). 1 means
--- every outside value lies above every inside value, 0.5 chance, 0 the
--- reverse. With bits/dim as the value, inside is the training
--- distribution's test set and outside the set to be flagged.
---
--- Misuse (an empty array, a value that is not a finite number, p out of
--- range) raises an error that names it.
local M = {}

local function check(values, what)
  if type(values) ~= "table" or #values == 0 then
    error(what .. " must be a non-empty array of numbers", 0)
  end
  for i, v in ipairs(values) do
    if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then
      error(string.format("%s: value %d must be a finite number, got %s", what, i, tostring(v)), 0)
    end
  end
end

--- A sorted copy of values.
function M.sorted(values)
  local s = table.move(values, 1, #values, 1, {})
  table.sort(s)
  return s
end

--- The p-th percentile of an already sorted array (no checks).
function M.percentile_sorted(s, p)
  local r = (#s - 1) * p / 100
  local i = math.floor(r)
  local f = r - i
  local lo = s[i + 1]
  if f == 0 then return lo end
  return lo + f * (s[i + 2] - lo)
end

function M.percentile(values, p)
  check(values, "stats.percentile: values")
  if type(p) ~= "number" or not (p >= 0 and p <= 100) then
    error("stats.percentile: p must be a number in [0, 100], got " .. tostring(p), 0)
  end
  return M.percentile_sorted(M.sorted(values), p)
end

function M.auroc(inside, outside)
  check(inside, "stats.auroc: inside")
  check(outside, "stats.auroc: outside")
  local n, m = #inside, #outside
  -- every value with its set (true: outside), sorted by value
  local all = {}
  for i = 1, n do all[i] = inside[i] end
  for j = 1, m do all[n + j] = outside[j] end
  local order = {}
  for k = 1, n + m do order[k] = k end
  table.sort(order, function(a, b) return all[a] < all[b] end)
  -- outside's rank sum, a run of tied values sharing the mean of its ranks
  local rank_sum, k = 0, 1
  while k <= n + m do
    local v, last = all[order[k]], k
    while last < n + m and all[order[last + 1]] == v do last = last + 1 end
    local out = 0
    for r = k, last do
      if order[r] > n then out = out + 1 end
    end
    rank_sum = rank_sum + out * (k + last) / 2
    k = last + 1
  end
  return (rank_sum - m * (m + 1) / 2) / (n * m)
end

return M
