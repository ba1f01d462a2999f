-- tools/install-deps: the README's first command and CI's install step. Runs
-- the script with a PATH of fakes (id, sudo, apt-get, node, npm, dpkg-query)
-- that log what they were asked, so no package is installed and the machine's
-- own node does not matter.
local mock = require "spec.support.mock"

local q, capture = mock.quote, mock.capture

local function read(path) return (assert(mock.read_file(path), path)) end

local function write(path, text, mode)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  if mode then assert(capture("chmod " .. mode .. " " .. q(path) .. " && echo ok"):match("ok")) end
end

local function words(s)
  local t = {}
  for w in s:gmatch("%S+") do t[#t + 1] = w end
  return t
end

local ROOT = capture("pwd"):gsub("%s+$", "") -- specs run from the repo root
local PACKAGES = words((read(".ci/debian-packages"):gsub("#[^\n]*", "")))

-- Runs tools/install-deps as `uid` with the given fakes on PATH:
--   opts.sudo (bool), opts.node / opts.npm (bool), opts.nodejs_version (what
--   dpkg-query says of the nodejs package; nil = not installed),
--   opts.apt_fails (bool), opts.args (string)
-- Returns the exit code, the script's output, and the log lines of the fakes.
local function run(uid, opts)
  local dir = capture("mktemp -d"):gsub("%s+$", "")
  local bin, log = dir .. "/bin", dir .. "/log"
  capture("mkdir " .. q(bin))
  for _, tool in ipairs { "sed", "tr", "dirname", "env" } do
    local real = capture("command -v " .. tool):gsub("%s+$", "")
    capture("ln -s " .. q(real) .. " " .. q(bin .. "/" .. tool))
  end
  local function fake(name, body) write(bin .. "/" .. name, "#!/bin/sh\n" .. body .. "\n", "755") end
  fake("id", 'echo "' .. uid .. '"')
  if opts.sudo then fake("sudo", 'echo "sudo $*" >>' .. q(log) .. '\nexec "$@"') end
  fake("apt-get", 'echo "apt-get DEBIAN_FRONTEND=$DEBIAN_FRONTEND $*" >>' .. q(log)
    .. (opts.apt_fails and "\nexit 100" or ""))
  if opts.node then fake("node", "exit 0") end
  if opts.npm then fake("npm", "exit 0") end
  if opts.nodejs_version then
    fake("dpkg-query", 'echo "' .. opts.nodejs_version .. '"')
  else
    fake("dpkg-query", "echo 'dpkg-query: no packages found matching nodejs' >&2; exit 1")
  end
  local out = capture("cd " .. q(dir) .. " && PATH=" .. q(bin) .. " /bin/sh " .. q(ROOT .. "/tools/install-deps")
    .. " " .. (opts.args or "") .. " 2>&1; echo \"rc=$?\"")
  local lines = {}
  for l in (mock.read_file(log) or ""):gmatch("[^\n]+") do lines[#lines + 1] = l end
  capture("rm -rf " .. q(dir))
  return tonumber(out:match("rc=(%d+)%s*$")), out, lines
end

local function install_line(extra)
  local all = { table.unpack(PACKAGES) }
  for _, p in ipairs(extra or {}) do all[#all + 1] = p end
  return "apt-get DEBIAN_FRONTEND=noninteractive install -y -qq --no-install-recommends " .. table.concat(all, " ")
end
local UPDATE = "apt-get DEBIAN_FRONTEND=noninteractive update -qq"

describe("tools/install-deps", function()
  it("as root runs apt-get itself (a Debian container has no sudo), with Debian's node where none is", function()
    local rc, out, log = run(0, {})
    assert.equal(0, rc, out)
    assert.same({ UPDATE, install_line { "nodejs", "npm" } }, log)
  end)

  it("as a user goes through sudo, keeping apt-get non-interactive", function()
    local rc, out, log = run(1000, { sudo = true })
    assert.equal(0, rc, out)
    assert.same({
      "sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq", UPDATE,
      "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
        .. table.concat(PACKAGES, " ") .. " nodejs npm",
      install_line { "nodejs", "npm" },
    }, log)
  end)

  it("as a user without sudo says what is needed and installs nothing", function()
    local rc, out, log = run(1000, {})
    assert.equal(2, rc, out)
    assert.matches("run it as root, or install sudo", out)
    assert.same({}, log)
  end)

  it("leaves an installed node and its npm alone (NodeSource's nodejs conflicts with Debian's npm)", function()
    local rc, out, log = run(0, { node = true, npm = true, nodejs_version = "20.20.2-1nodesource1" })
    assert.equal(0, rc, out)
    assert.same({ UPDATE, install_line() }, log)
  end)

  it("adds npm to Debian's own nodejs, and only to it", function()
    local rc, out, log = run(0, { node = true, nodejs_version = "18.20.4+dfsg-1~deb12u3" })
    assert.equal(0, rc, out)
    assert.same({ UPDATE, install_line { "npm" } }, log)
    rc, out, log = run(0, { node = true, nodejs_version = "20.20.2-1nodesource1" })
    assert.equal(0, rc, out)
    assert.matches("node is installed without npm", out)
    assert.same({ UPDATE, install_line() }, log)
  end)

  it("fails when apt-get fails, and stops there", function()
    local rc, out, log = run(0, { apt_fails = true })
    assert.equal(100, rc, out)
    assert.same({ UPDATE }, log)
  end)

  it("prints the commands with --dry-run and refuses unknown arguments", function()
    local rc, out, log = run(1000, { sudo = true, node = true, npm = true, args = "--dry-run" })
    assert.equal(0, rc, out)
    assert.same({}, log)
    assert.truthy(out:find("sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq\n", 1, true), out)
    rc, out = run(0, { args = "--yes" })
    assert.equal(2, rc, out)
    assert.matches("usage: sh tools/install%-deps", out)
  end)
end)

describe("the README's set-up commands", function()
  local readme = read("README.md")
  local block = readme:match("^# [^\n]*\n+```sh\n(.-)```")

  it("are two: the first installs (no sudo of its own) and runs the demo, the second runs the tests", function()
    assert.is_string(block, "README.md does not open with a sh code block")
    local cmds = {}
    for l in block:gmatch("[^\n]+") do cmds[#cmds + 1] = l end
    assert.same({ "sh tools/install-deps && make demo", "make test" }, cmds)
  end)

  it("install what CI installs", function()
    assert.matches("\nsh tools/install%-deps", read(".ci/run"))
    assert.is_nil(read(".ci/run"):find("apt-get", 1, true))
  end)
end)
