# Sourced by the side-by-side benchmark scripts: builds, installs Debian's
# PyTorch and SciPy when missing, and points Lua at this checkout.
cd "$(dirname "$0")/.."
sh spec/run.sh --build-only
for p in python3-torch python3-scipy; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null; }
done
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;$PWD/bench/?.lua;;"
export LUA_CPATH="$PWD/build/?.so;;"
