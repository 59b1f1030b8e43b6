#!/bin/sh
# `luarocks test` for the rock, on a machine that cannot reach luarocks.org.
#
# The rockspec says test = {type = "busted"} with busted in test_dependencies,
# and the `glow` command needs argparse and luafilesystem. Where luarocks.org
# is reachable, `luarocks --lua-version 5.4 test rockspec/glow-scm-1.rockspec`
# installs busted itself and runs every spec. Debian ships all three as
# packages (lua-busted, lua-argparse, lua-filesystem), which luarocks does not
# see as rocks; this script registers Debian's busted as a rock in a scratch
# tree (a one-line wrapper of /usr/bin/busted), declares the other two
# provided, and runs `luarocks test` with that configuration. Arguments go to
# busted, e.g.  sh spec/luarocks_test.sh spec/json_spec.lua
set -eu
cd "$(dirname "$0")/.."
root=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/shim"
cat > "$tmp/shim/busted-2.1.1-1.rockspec" <<'ROCK'
rockspec_format = "3.0"
package = "busted"
version = "2.1.1-1"
source = { url = "file:///dev/null" }
description = { summary = "Debian's busted (lua-busted), registered as a rock for an offline luarocks test" }
build = { type = "none", install = { bin = { busted = "busted" } } }
ROCK
printf '#!/bin/sh\nexec /usr/bin/busted "$@"\n' > "$tmp/shim/busted"
chmod +x "$tmp/shim/busted"
(cd "$tmp/shim" && env -u LD_PRELOAD luarocks --lua-version 5.4 make busted-2.1.1-1.rockspec \
  --tree "$tmp/tree" --deps-mode none >/dev/null)
cat > "$tmp/config.lua" <<CFG
rocks_provided = { argparse = "0.7.1-1", luafilesystem = "1.8.0-1" }
rocks_trees = { { name = "offline", root = "$tmp/tree" } }
CFG
cd "$root"
LUAROCKS_CONFIG="$tmp/config.lua" env -u LD_PRELOAD luarocks --lua-version 5.4 test rockspec/glow-scm-1.rockspec -- "$@"
