-- Argo CD health check for servicedb.io/Tenant (argocd-cm key
-- resource.customizations.health.servicedb.io_Tenant). Argo runs it in gopher-lua (Lua 5.1)
-- without the standard libraries, so it uses only ipairs and operators.
-- Order: no status yet, deletion, an unobserved generation (all Progressing); Stalled=True
-- (Degraded: servicedb cannot go on without a change); Ready=True (Healthy); else
-- Progressing with Ready's reason and message.
local hs = { status = "Progressing", message = "Waiting for servicedb" }
-- A condition's message, else its reason, else the fallback (an empty message says nothing).
local function describe(condition, fallback)
  if condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  if condition.reason ~= nil and condition.reason ~= "" then
    return condition.reason
  end
  return fallback
end
local status = obj.status
if status == nil or status.conditions == nil then
  return hs
end
if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.message = "Deletion in progress: waiting for servicedb to release it"
  return hs
end
local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
if generation ~= nil and status.observedGeneration ~= generation then
  local observed = status.observedGeneration
  if observed == nil then
    observed = "none"
  end
  hs.message = "Waiting for servicedb to observe generation " .. generation .. " (observed: " .. observed .. ")"
  return hs
end
local ready = nil
for _, condition in ipairs(status.conditions) do
  if condition.type == "Stalled" and condition.status == "True" then
    hs.status = "Degraded"
    hs.message = describe(condition, "Stalled")
    return hs
  end
  if condition.type == "Ready" then
    ready = condition
  end
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end
if ready ~= nil then
  local reason = ready.reason
  if reason == nil or reason == "" then
    reason = "NotReady"
  end
  if ready.message ~= nil and ready.message ~= "" then
    hs.message = reason .. ": " .. ready.message
  else
    hs.message = reason
  end
end
return hs
