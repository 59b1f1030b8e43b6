--- The paper's Figure 3 on Fashion-MNIST: the permutation between
--- couplings, reverse vs shuffle vs invertible 1x1 convolution (LU form),
--- each with additive and affine coupling, all on one shortened schedule
--- (same model size, data order, seed and learning rate schedule). The test
--- bits/dim on the first --eval-limit test images is taken every
--- --eval-every steps; the final figure on the --final-eval-limit first test
--- images (0: all 10,000). No Polyak average by default, so every point is
--- the weights as trained.
---
---   lua5.4 examples/ablation.lua [--max-steps 1500] [--eval-every 250] [--eval-limit 2000]
---       [--final-eval-limit 0] [--permutations reverse,shuffle,invconv_lu] [--couplings additive,affine]
---       [--quick] [--out DIR] [--seed 0] [--data-dir DIR]
---       [--batch 64] [--lr 1e-3] [--warmup 200] [--schedule wsd] [--decay-frac 0.2] [--clip 100]
---       [--polyak 0] [--levels 2] [--depth 8] [--width 128]
---
--- Writes DIR/ablation.md (the table of final test bits/dim), DIR/curves.dat
--- (test bits/dim against steps, a column per variant), DIR/plot.gp and
--- DIR/ablation.png (drawn by gnuplot: Debian package gnuplot-nox; without
--- it the table is still written), DIR/log-<variant>.csv and
--- DIR/summary.txt (DIR: out/ablation).
local C = dofile((arg[0]:match("^(.*)[/\\]") or ".") .. "/common.lua")

local SPEC = C.merge(C.TRAIN_OPTIONS, {
  ["max-steps"] = { "int", 1500, quick = 6, min = 0 },
  polyak = { "number", 0, min = 0 },
  ["eval-every"] = { "int", 250, quick = 3, min = 1 },
  ["eval-limit"] = { "int", 2000, quick = 32, min = 0 },
  ["final-eval-limit"] = { "int", 0, quick = 64, min = 0 },
  permutations = { "strings", { "reverse", "shuffle", "invconv_lu" },
    choices = { "reverse", "shuffle", "invconv", "invconv_lu" } },
  couplings = { "strings", { "additive", "affine" }, choices = { "additive", "affine" } },
})
SPEC.permutation, SPEC.coupling = nil, nil -- the variants set them

local function have_gnuplot()
  return os.execute("command -v gnuplot >/dev/null 2>&1")
end

--- The gnuplot script: a colour per permutation, solid for affine, dashed
--- for additive.
local function plot_script(variants, terminal, eval_n)
  local colour = { reverse = "#1b9e77", shuffle = "#d95f02", invconv = "#7570b3", invconv_lu = "#7570b3" }
  local lines = {
    string.format("set terminal %s size 900,600 noenhanced", terminal),
    "set output 'ablation.png'",
    "set datafile missing '?'",
    "set title 'Fashion-MNIST: permutation and coupling (Glow, Figure 3)'",
    "set xlabel 'training step'",
    string.format("set ylabel 'test bits/dim (%s test images)'", eval_n),
    "set grid",
    "set key top right",
  }
  local plots = {}
  for i, v in ipairs(variants) do
    if next(v.curve) == nil then goto continue end -- a variant that failed before its first point
    plots[#plots + 1] = string.format("'curves.dat' using 1:%d with linespoints lw 2 pt 7 ps 0.6 lc rgb '%s' dt %d "
      .. "title columnheader(%d)", i + 1, colour[v.permutation], v.coupling == "affine" and 1 or 2, i + 1)
    ::continue::
  end
  if #plots > 0 then lines[#lines + 1] = "plot " .. table.concat(plots, ", \\\n     ") end
  return table.concat(lines, "\n") .. "\n"
end

--- Write DIR/plot.gp and draw DIR/ablation.png with gnuplot when it is there.
local function draw(out, variants, dir, eval_n)
  local again = "cd " .. C.shell_quote(dir) .. " && gnuplot plot.gp"
  local terminal = "pngcairo"
  if have_gnuplot() then
    local p = io.popen("gnuplot -e 'set terminal' 2>&1")
    if not p:read("a"):find("pngcairo", 1, true) then terminal = "png" end
    p:close()
  end
  local script = plot_script(variants, terminal, eval_n)
  out:text("plot.gp", script)
  if not script:find("\nplot ") then
    out:say("no variant has a test figure to plot")
  elseif not have_gnuplot() then
    local msg = "gnuplot not found, so no ablation.png: install it (Debian: apt-get install gnuplot-nox), "
      .. "then run: " .. again
    io.stderr:write("examples/ablation.lua: ", msg, "\n")
    out:say("%s", msg)
  else
    local p = io.popen(again .. " 2>&1")
    local said = p:read("a")
    if not p:close() then C.fail("gnuplot failed (%s): %s", again, said) end
    out:add("ablation.png")
    out:say("ablation.png: test bits/dim against steps, a line per variant (redraw: %s)", again)
  end
end

local function fmt_time(s) return string.format("%dm%02ds", s // 60, math.floor(s % 60)) end

C.script("ablation", SPEC, function(o, out)
  local train, test = C.fashion_mnist(o, "train"), C.fashion_mnist(o, "test")
  local total = o["max-steps"] > 0 and o["max-steps"] or o.epochs * math.ceil(train:size() / o.batch)
  local eval_n = o["eval-limit"] > 0 and math.min(o["eval-limit"], test:size()) or test:size()
  local final_n = o["final-eval-limit"] > 0 and math.min(o["final-eval-limit"], test:size()) or test:size()
  out:say("schedule: %d steps of batch %d, lr %g, warmup %d, %s schedule; levels %d, depth %d, width %d; "
    .. "test bits/dim on %d images every %d steps, final on %d", total, o.batch, o.lr, o.warmup, o.schedule,
    o.levels, o.depth, o.width, eval_n, o["eval-every"], final_n)

  local variants, steps_seen, by_step = {}, {}, {}
  for _, p in ipairs(o.permutations) do
    for _, c in ipairs(o.couplings) do
      local v = { permutation = p, coupling = c, name = p .. "/" .. c, curve = {} }
      variants[#variants + 1] = v
      print(string.format("== %s coupling, %s permutation", c, p))
      local function on_step(_, state, model)
        if state.step % o["eval-every"] == 0 or state.step == total then
          local bpd = model:bits_per_dim(test, { limit = eval_n })
          v.curve[state.step] = bpd
          if not by_step[state.step] then
            by_step[state.step] = true
            steps_seen[#steps_seen + 1] = state.step
          end
          if not o.quick then print(string.format("step %d: test bits/dim %.4f", state.step, bpd)) end
        end
      end
      -- one failing variant (say, a diverging run) does not lose the others
      local ok, err = pcall(function()
        local log = "log-" .. p .. "-" .. c .. ".csv"
        local model, result = C.train(o, { train = train, coupling = c, permutation = p, eval = false,
          log = out:path(log), on_step = on_step })
        out:add(log)
        v.final = model:bits_per_dim(test, { limit = final_n })
        v.wall = result.state.wall
      end)
      if not ok then
        if tostring(err):find("interrupted", 1, true) then error(err, 0) end -- Ctrl-C stops the whole run
        v.error = tostring(err)
      end
      out:say("%-10s %-8s %s", p, c, v.error and ("failed: " .. v.error)
        or string.format("test bits/dim %.4f (%s)", v.final, fmt_time(v.wall)))
    end
  end
  table.sort(steps_seen)

  -- the table
  local md = { string.format("Final test bits/dim on %d Fashion-MNIST test images after %d steps "
    .. "(batch %d; levels %d, depth %d, width %d).", final_n, total, o.batch, o.levels, o.depth, o.width), "",
    "| permutation | coupling | test bits/dim | time |", "|---|---|---|---|" }
  for _, v in ipairs(variants) do
    md[#md + 1] = string.format("| %s | %s | %s | %s |", v.permutation, v.coupling,
      v.error and "failed" or string.format("%.4f", v.final), v.wall and fmt_time(v.wall) or "-")
  end
  out:text("ablation.md", table.concat(md, "\n") .. "\n")

  -- the curves: a column per variant
  local rows = { string.format("# test bits/dim on the first %d test images against training steps", eval_n) }
  local head = { "step" }
  for _, v in ipairs(variants) do head[#head + 1] = v.name end
  rows[#rows + 1] = table.concat(head, " ")
  for _, s in ipairs(steps_seen) do
    local row = { tostring(s) }
    for _, v in ipairs(variants) do row[#row + 1] = v.curve[s] and string.format("%.5f", v.curve[s]) or "?" end
    rows[#rows + 1] = table.concat(row, " ")
  end
  out:text("curves.dat", table.concat(rows, "\n") .. "\n")

  draw(out, variants, o.out, eval_n)
  local failed = 0
  for _, v in ipairs(variants) do if v.error then failed = failed + 1 end end
  if failed > 0 then
    out:finish()
    C.fail("%d of %d variants failed (see %s)", failed, #variants, out:path("ablation.md"))
  end
end)
