-- Runs servicedb's Argo CD health checks against their fixtures, the way Argo CD does:
-- each script is a chunk with only `obj` and Lua's base functions (no string, math, os or io
-- library, and no string methods), as gopher-lua runs it without open libraries.
--
-- Usage: lua5.1 run_tests.lua CASES.lua
-- CASES.lua (written by run_tests.py from health_test.yaml and testdata/*.yaml) returns a list
-- of { name, script, obj, status, message }. Prints one line per case and a closing
-- "N passed, N failed" line; exits 1 when any case failed.

local cases_file = arg[1]
if cases_file == nil then
  io.stderr:write("usage: lua5.1 run_tests.lua CASES.lua\n")
  os.exit(2)
end
local cases = dofile(cases_file)

local sources = {}
local function load_script(path)
  if sources[path] == nil then
    local f = assert(io.open(path, "r"))
    sources[path] = f:read("*a")
    f:close()
  end
  return sources[path]
end

-- What Argo gives a health script without useOpenLibs: base functions and table.
local function sandbox(obj)
  return {
    obj = obj,
    ipairs = ipairs, pairs = pairs, next = next, type = type, select = select,
    tostring = tostring, tonumber = tonumber, error = error, assert = assert,
    pcall = pcall, unpack = unpack, table = table,
  }
end

local string_meta = getmetatable("")
local passed, failed = 0, 0
for _, case in ipairs(cases) do
  local chunk, err = loadstring(load_script(case.script), "@" .. case.script)
  local ok, result
  if chunk == nil then
    ok, result = false, err
  else
    setfenv(chunk, sandbox(case.obj))
    -- gopher-lua without the string library has no string methods either.
    local string_index = string_meta.__index
    string_meta.__index = nil
    ok, result = pcall(chunk)
    string_meta.__index = string_index
  end
  local problem = nil
  if not ok then
    problem = "error: " .. tostring(result)
  elseif type(result) ~= "table" then
    problem = "returned " .. type(result) .. ", not a table"
  elseif result.status ~= case.status or result.message ~= case.message then
    problem = string.format("got {status = %q, message = %q}, want {status = %q, message = %q}",
      tostring(result.status), tostring(result.message), case.status, case.message)
  end
  if problem == nil then
    passed = passed + 1
    print("ok      " .. case.name)
  else
    failed = failed + 1
    print("FAILED  " .. case.name .. ": " .. problem)
  end
end
print(string.format("argocd-health: %d passed, %d failed", passed, failed))
if failed > 0 or passed == 0 then
  os.exit(1)
end
